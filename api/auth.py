"""Bearer API keys with scopes on every ``/v1`` route."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g, request

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
            runtime = current_app.extensions["riskctl"]
            principal: Principal = runtime.keys.verify(request.headers.get("Authorization"))
            if inline_limit:
                g.rate_limit = _limiter().limit_for(principal.key_id)
            else:
                _limiter().hit(principal.key_id)
            if not any(principal.has(s) for s in scopes):
                raise Forbidden(
                    f"this key lacks the scope for this operation (needs one of: {', '.join(scopes)})"
                )
            g.principal = principal
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
