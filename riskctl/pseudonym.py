"""Keyed hashes for identifiers that must never be stored raw (IPs, devices, cards).

The same value always maps to the same token under one key, so velocity counters, lists
and linked-account graphs work on tokens; without the key a token cannot be reversed by
enumerating the (small) IPv4 space, which a plain hash would allow. Tokens are BLAKE2b in
keyed mode (a MAC, like HMAC, at half the cost), 128 bits, URL-safe base64.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


class Pseudonymizer:
    # Tokens of recently seen values: buyers, shops and devices repeat across events, and a
    # check derives about twenty tokens. Bounded; cleared wholesale when full.
    CACHE_SIZE = 100_000

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the pseudonym key must be at least 16 bytes")
        # BLAKE2b takes keys up to 64 bytes; longer configured keys are condensed first.
        self._key = key if len(key) <= 64 else hashlib.sha256(key).digest()
        self._hmac_key = key
        self._cache: dict[tuple[str, str], str] = {}

    def token(self, namespace: str, value: str, *, cache: bool = True) -> str:
        """A 128-bit, URL-safe token for ``value`` in ``namespace`` (``ip``, ``device``...).

        ``cache=False`` for values seen once (event ids): they would only push the repeating
        ones out of the cache."""
        cached = self._cache.get((namespace, value))
        if cached is not None:
            return cached
        digest = hashlib.blake2b(f"{namespace}\x00{value}".encode(), key=self._key, digest_size=16).digest()
        token = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if not cache:
            return token
        if len(self._cache) >= self.CACHE_SIZE:
            self._cache.clear()
        self._cache[(namespace, value)] = token
        return token

    def digest(self, data: bytes) -> str:
        """Keyed hex digest of arbitrary bytes (request bodies, which contain raw IPs)."""
        return hmac.new(self._hmac_key, data, hashlib.sha256).hexdigest()
