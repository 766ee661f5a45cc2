"""Request ids, JSON logs and Prometheus metrics (correct across gunicorn workers).

With several workers, ``PROMETHEUS_MULTIPROC_DIR`` (set by ``riskctl serve``) makes each
worker write its samples to files that ``/metrics`` aggregates; without it (tests, the dev
server) the in-process registry is used.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

DECISIONS = Counter("riskctl_decisions_total", "Risk-check decisions", ["kind", "outcome", "degraded"])
CHECK_LATENCY = Histogram(
    "riskctl_check_duration_seconds",
    "Server-side duration of POST /v1/checks",
    ["kind"],
    buckets=(0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
HTTP_REQUESTS = Counter("riskctl_http_requests_total", "HTTP requests", ["method", "endpoint", "status"])

_LOG_FIELDS = (
    "request_id",
    "method",
    "path",
    "status",
    "duration_ms",
    "key_id",
    "decision_id",
    "outcome",
    "kind",
    "socket",
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in _LOG_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                doc[name] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc).decode()


def configure_logging(level: str) -> None:
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        root.setLevel(level.upper())
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


access_log = logging.getLogger("riskctl.access")


def init_app(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex

    @app.after_request
    def _finish(response: Response) -> Response:
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        response.headers["X-Request-ID"] = g.get("request_id", "")
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        HTTP_REQUESTS.labels(request.method, endpoint, str(response.status_code)).inc()
        result = g.get("check_result")
        if result is not None and not result.replayed:
            DECISIONS.labels(result.kind, result.outcome, str(result.degraded).lower()).inc()
            CHECK_LATENCY.labels(result.kind).observe(elapsed)
        principal = g.get("principal")
        # No client IP or body here: logs must hold no raw identifiers.
        access_log.info(
            "request",
            extra={
                "request_id": g.get("request_id"),
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round(elapsed * 1000, 3),
                "key_id": principal.key_id if principal else None,
                "decision_id": result.decision_id if result else None,
                "outcome": result.outcome if result else None,
            },
        )
        return response


def metrics_response() -> Response:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = DEFAULT_REGISTRY
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST.split(";")[0])
