"""Bearer API keys with scopes on every ``/v1`` route."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g, request

from riskctl.apikeys import Principal
from riskctl.errors import Forbidden
from riskctl.roles import Permission, can

F = TypeVar("F", bound=Callable[..., Any])


def require(*scopes: str) -> Callable[[F], F]:
    """Allow the view when the key holds any of ``scopes`` (``admin`` holds all)."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            runtime = current_app.extensions["riskctl"]
            principal: Principal = runtime.keys.verify(request.headers.get("Authorization"))
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
            if not any(can(s, perm) for s in principal.scopes):
                raise Forbidden(f"this key's scopes ({', '.join(sorted(principal.scopes))}) do not allow {perm}")
            g.principal = principal
            return view(*args, **kwargs)

        wrapper.required_permission = perm  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator
