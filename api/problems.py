"""The single error renderer: every error is RFC 9457 ``application/problem+json``."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from riskctl.errors import RiskctlError

log = logging.getLogger("riskctl.api")
PROBLEM_JSON = "application/problem+json"

_HTTP_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    429: "rate-limited",
}


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {
        "type": f"urn:riskctl:problem:{slug}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.path if request else None,
    }
    request_id = getattr(g, "request_id", None)
    if request_id:
        body["request_id"] = request_id
    body.update({k: v for k, v in extra.items() if v is not None})
    response = Response(orjson.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(RiskctlError)
    def _riskctl_error(exc: RiskctlError) -> Response:
        if exc.status >= 500:
            log.error("server error", exc_info=exc)
        headers = exc.extra.pop("headers", None) if isinstance(exc.extra, dict) else None
        return problem(exc.status, exc.type_slug, exc.title, exc.detail, headers, **exc.extra)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        slug = _HTTP_SLUGS.get(status, "http-error")
        detail = exc.description or exc.name
        if status == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH")
            detail = f"the request body exceeds the limit of {limit} bytes"
        elif status == 405:
            detail = f"{request.method} is not allowed on {request.path}"
        elif status == 404:
            detail = f"no route {request.path}"
        headers = {}
        if status == 405 and exc.get_response().headers.get("Allow"):
            headers["Allow"] = exc.get_response().headers["Allow"]
        return problem(status, slug, exc.name, detail, headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.error("unhandled error", exc_info=exc)
        return problem(
            500, "internal-error", "Internal server error", "an unexpected error occurred; it has been logged"
        )
