"""Who is logged in, what they may do, and how often they may try a password."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import redis
from flask import current_app
from flask_login import UserMixin, current_user

from riskctl.errors import Forbidden
from riskctl.roles import Permission, Role, can
from riskctl.users import UserInfo, get_user

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


class UiUser(UserMixin):  # type: ignore[misc]
    def __init__(self, info: UserInfo) -> None:
        self.info = info
        self.id = info.id
        self.username = info.username
        self.role = Role(info.role)

    @property
    def is_active(self) -> bool:  # an account switched off loses its session on the next request
        return bool(self.info.active)

    def can(self, perm: Permission | str) -> bool:
        return can(self.role, perm)


def load_user(user_id: str) -> UiUser | None:
    info = get_user(current_app.extensions["riskctl"].sessions, user_id)
    return UiUser(info) if info is not None else None


def needs(perm: Permission) -> Callable[[F], F]:
    """Allow the view only to a logged-in user whose role holds ``perm`` (403 otherwise)."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
            if not can(current_user.role, perm):
                raise Forbidden(f"your role ({current_user.role}) may not do this ({perm})")
            return view(*args, **kwargs)

        wrapper.required_permission = perm  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


class LoginLimiter:
    """Failed logins per client address and per username in a fixed window, in Redis.

    Keys hold keyed hashes (never the address or name itself). When Redis is down the
    limiter lets the attempt through: argon2 already makes each guess slow, and locking
    every moderator out because a cache is down would be worse.
    """

    def __init__(
        self,
        client: redis.Redis,
        pseudonymize: Callable[[str], str],
        *,
        per_address: int = 20,
        per_username: int = 5,
        window_s: int = 300,
    ) -> None:
        self.client = client
        self.pseudonymize = pseudonymize
        self.per_address = per_address
        self.per_username = per_username
        self.window_s = window_s

    def _keys(self, address: str, username: str) -> list[tuple[str, int]]:
        return [
            (f"ui:login:addr:{self.pseudonymize('addr:' + address)}", self.per_address),
            (f"ui:login:user:{self.pseudonymize('user:' + username.strip().lower())}", self.per_username),
        ]

    def blocked(self, address: str, username: str) -> bool:
        try:
            keys = self._keys(address, username)
            counts = self.client.mget([k for k, _ in keys])
        except redis.RedisError as exc:
            log.warning("login limiter unavailable: %s", exc)
            return False
        return any(int(c or 0) >= limit for c, (_, limit) in zip(counts, keys, strict=True))

    def failed(self, address: str, username: str) -> None:
        try:
            pipe = self.client.pipeline(transaction=False)
            for key, _ in self._keys(address, username):
                pipe.incr(key)
                pipe.expire(key, self.window_s, nx=True)
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("login limiter unavailable: %s", exc)

    def succeeded(self, username: str) -> None:
        """A good password clears the username's count (not the address's)."""
        try:
            self.client.delete(self._keys("-", username)[1][0])
        except redis.RedisError as exc:
            log.warning("login limiter unavailable: %s", exc)
