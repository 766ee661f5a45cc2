"""Bearer API keys with scopes on every ``/v1`` route; the UI's session cookie interface."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, Request, Response, current_app, g, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from itsdangerous import URLSafeTimedSerializer

from riskctl.apikeys import Principal
from riskctl.errors import Forbidden
from riskctl.ratelimit import RateLimiter
from riskctl.roles import Permission, can

F = TypeVar("F", bound=Callable[..., Any])


def _limiter() -> RateLimiter:
    return current_app.extensions["riskctl"].extras["rate_limiter"]  # type: ignore[no-any-return]


def count_request(principal: Principal) -> None:
    """Count one request against the key's rate limit (for views with their own key check)."""
    _limiter().hit(principal.key_id)


def require(*scopes: str, inline_limit: bool = False) -> Callable[[F], F]:
    """Allow the view when the key holds any of ``scopes`` (``admin`` holds all).

    Every request of a key counts against its rate limit (riskctl.ratelimit) in one Redis
    call; with ``inline_limit`` the view counts it itself (the check folds it into its
    single round trip, passing ``g.rate_limit``).
    """

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            # each proxy resolved once: this runs on every API call
            runtime = current_app.extensions["riskctl"]
            principal: Principal = runtime.keys.verify(request.environ.get("HTTP_AUTHORIZATION"))
            limiter: RateLimiter = runtime.extras["rate_limiter"]
            ctx_g = g._get_current_object()  # type: ignore[attr-defined]
            if inline_limit:
                ctx_g.rate_limit = limiter.limit_for(principal.key_id)
            else:
                limiter.hit(principal.key_id)
            if not any(principal.has(s) for s in scopes):
                raise Forbidden(
                    f"this key lacks the scope for this operation (needs one of: {', '.join(scopes)})"
                )
            ctx_g.principal = principal
            return view(*args, **kwargs)

        wrapper.required_scopes = scopes  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


def require_permission(perm: Permission) -> Callable[[F], F]:
    """Allow the view when one of the key's scopes is a role (riskctl.roles) holding ``perm``."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            runtime = current_app.extensions["riskctl"]
            principal: Principal = runtime.keys.verify(request.headers.get("Authorization"))
            _limiter().hit(principal.key_id)
            if not any(can(s, perm) for s in principal.scopes):
                raise Forbidden(f"this key's scopes ({', '.join(sorted(principal.scopes))}) do not allow {perm}")
            g.principal = principal
            return view(*args, **kwargs)

        wrapper.required_permission = perm  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


class CookieSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session (same cookie, same signing), cheaper per request.

    Flask builds an itsdangerous serializer on every request, API calls included; here it is
    built once per secret key (and fallbacks). A request with no ``Cookie`` header gets the
    empty session Flask would give it without parsing or signing anything, and a session
    that stays empty and unmodified is saved by only the ``Vary: Cookie`` Flask adds when
    it was read (Flask-Login reads it on every response). Anything else, the UI's logins
    and CSRF tokens, takes Flask's own path.
    """

    def __init__(self) -> None:
        self._serializer: tuple[tuple[Any, ...], URLSafeTimedSerializer | None] | None = None

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        if not app.secret_key:
            return None
        fallbacks = app.config.get("SECRET_KEY_FALLBACKS")
        key = (app.secret_key, tuple(fallbacks) if fallbacks else ())
        cached = self._serializer  # one read: another thread may swap in a new tuple
        if cached is not None and cached[0] == key:
            return cached[1]
        serializer = super().get_signing_serializer(app)
        self._serializer = (key, serializer)
        return serializer

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if "HTTP_COOKIE" not in request.environ:
            return self.session_class() if app.secret_key else None
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not session and not session.modified:
            if session.accessed:
                if "Vary" in response.headers:
                    response.vary.add("Cookie")
                else:
                    response.headers["Vary"] = "Cookie"  # what vary.add writes on an empty header
            return
        super().save_session(app, session, response)
