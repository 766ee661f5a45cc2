"""One exception hierarchy; the API layer renders each as RFC 9457 problem+json."""

from __future__ import annotations

from typing import Any


class RiskctlError(Exception):
    """Base error. ``status`` is the HTTP status, ``type_slug`` names the problem type."""

    status: int = 500
    type_slug: str = "internal-error"
    title: str = "Internal server error"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra


class BadRequest(RiskctlError):
    status = 400
    type_slug = "bad-request"
    title = "Bad request"


class MalformedJSON(BadRequest):
    type_slug = "malformed-json"
    title = "Malformed JSON body"


class ValidationFailed(RiskctlError):
    status = 422
    type_slug = "validation-failed"
    title = "The request body failed validation"


class Unauthorized(RiskctlError):
    status = 401
    type_slug = "unauthorized"
    title = "Missing or invalid credentials"


class Forbidden(RiskctlError):
    status = 403
    type_slug = "forbidden"
    title = "Not allowed"


class NotFound(RiskctlError):
    status = 404
    type_slug = "not-found"
    title = "Not found"


class Conflict(RiskctlError):
    status = 409
    type_slug = "conflict"
    title = "Conflict"


class IdempotencyConflict(Conflict):
    type_slug = "idempotency-conflict"
    title = "event_id was already used with a different body"


class UnsupportedMediaType(RiskctlError):
    status = 415
    type_slug = "unsupported-media-type"
    title = "Unsupported media type"


class PayloadTooLarge(RiskctlError):
    status = 413
    type_slug = "payload-too-large"
    title = "Request body too large"


class RateLimited(RiskctlError):
    status = 429
    type_slug = "rate-limited"
    title = "Too many requests"


class ConfigError(RiskctlError):
    type_slug = "config-error"
    title = "Invalid configuration"


class DependencyUnavailable(RiskctlError):
    status = 503
    type_slug = "dependency-unavailable"
    title = "A dependency is unavailable"
