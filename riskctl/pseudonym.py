"""Keyed hashes for identifiers that must never be stored raw (IPs, devices, cards).

The same value always maps to the same token under one key, so velocity counters, lists
and linked-account graphs work on tokens; without the key a token cannot be reversed
by enumerating the (small) IPv4 space, which a plain hash would allow.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


class Pseudonymizer:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the pseudonym key must be at least 16 bytes")
        self._key = key

    def token(self, namespace: str, value: str) -> str:
        """A 128-bit, URL-safe token for ``value`` in ``namespace`` (``ip``, ``device``...)."""
        digest = hmac.new(self._key, f"{namespace}\x00{value}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()

    def digest(self, data: bytes) -> str:
        """Keyed hex digest of arbitrary bytes (request bodies, which contain raw IPs)."""
        return hmac.new(self._key, data, hashlib.sha256).hexdigest()
