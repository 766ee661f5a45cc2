"""API keys: ``rk_<prefix>_<secret>``, stored as SHA-256 of the whole key, with scopes.

Keys carry 256 bits of randomness, so a fast hash is the right tool (a slow password
hash would only add latency to every check); the prefix finds the row, and the digest
is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from riskctl import audit
from riskctl.errors import Unauthorized, ValidationFailed
from riskctl.models import ApiKey, utcnow

# A scope that names a role (riskctl.roles) grants that role's permissions on /v1/cases.
SCOPES = (
    "pipeline",
    "analyst",
    "admin",
    "metrics",
    "moderator",
    "senior_moderator",
    "compliance",
    "rights_holder",  # a key named for the rights holder: it sees only its own complaints and brands
)


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: int
    name: str
    scopes: frozenset[str]

    def has(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(sessions: sessionmaker[Session], name: str, scopes: list[str], *, actor: str = "cli") -> str:
    """Create a key and return it; only its hash is stored, so this is the one chance to see it."""
    bad = [s for s in scopes if s not in SCOPES]
    if bad or not scopes:
        raise ValidationFailed(f"scopes must be among {', '.join(SCOPES)}; got {scopes}")
    prefix = secrets.token_hex(6)
    key = f"rk_{prefix}_{secrets.token_urlsafe(32)}"
    with sessions.begin() as session:
        session.add(
            ApiKey(
                name=name[:100], prefix=prefix, key_hash=_digest(key), scopes=",".join(sorted(set(scopes)))
            )
        )
        session.flush()
        detail = {"name": name[:100], "scopes": sorted(set(scopes))}
        audit.append(session.connection(), actor, "apikey.create", f"apikey:{prefix}", detail)
    return key


def revoke_key(sessions: sessionmaker[Session], prefix: str, *, actor: str = "cli") -> bool:
    with sessions.begin() as session:
        row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
        if row is None or row.revoked_at is not None:
            return False
        row.revoked_at = utcnow()
        session.flush()
        audit.append(session.connection(), actor, "apikey.revoke", f"apikey:{prefix}", {"name": row.name})
        return True


class KeyVerifier:
    """Verifies bearer keys, caching good ones briefly so a check costs no extra query."""

    def __init__(self, sessions: sessionmaker[Session], cache_seconds: float = 30.0) -> None:
        self.sessions = sessions
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def verify(self, header: str | None) -> Principal:
        if not header:
            raise Unauthorized("an API key is required: Authorization: Bearer <key>")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthorized("use the Bearer scheme: Authorization: Bearer <key>")
        key = key.strip()
        digest = _digest(key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        parts = key.split("_")
        if len(parts) < 3 or parts[0] != "rk":
            raise Unauthorized("the API key is not valid")
        with self.sessions() as session:
            row = session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
        if row is None or row.revoked_at is not None or not hmac.compare_digest(row.key_hash, digest):
            raise Unauthorized("the API key is not valid")
        principal = Principal(row.id, row.name, row.scope_set)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (principal, now + self.cache_seconds)
        return principal
