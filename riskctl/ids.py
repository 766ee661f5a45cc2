"""Time-sortable opaque identifiers (ULID-like): ``dec_01JD...``."""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
_RANDOM_BITS = 80
_lock = threading.Lock()
_last = (0, 0)  # (milliseconds, random part) of the last id made in this process


def new_id(prefix: str) -> str:
    """48 bits of milliseconds + 80 random bits, base32: sortable by creation time.

    Monotonic within a process (as ULID's monotonic variant): an id made in the same
    millisecond as the one before gets that one's random part plus one, so ids made one
    after another sort in the order they were made. Rows stamped with the same time and
    ordered by (time, id), such as the actions one step of the seller ladder enqueues,
    then keep the order they were written in.
    """
    global _last
    ms = int(time.time() * 1000)
    with _lock:
        last_ms, last_rand = _last
        if ms <= last_ms:  # same millisecond, or the clock stepped back
            ms, rand = last_ms, last_rand + 1
            if rand >> _RANDOM_BITS:  # 2**80 ids in one millisecond: borrow the next one
                ms, rand = ms + 1, int.from_bytes(os.urandom(10), "big")
        else:
            rand = int.from_bytes(os.urandom(10), "big")
        _last = (ms, rand)
    value = (ms << _RANDOM_BITS) | rand
    chars = []
    for _ in range(26):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return f"{prefix}_{''.join(reversed(chars))}"
