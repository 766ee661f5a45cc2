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
import uuid
from datetime import UTC, datetime
from time import perf_counter
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


# Label children of the hot metrics, bound once per label tuple: ``labels()`` validates and
# locks on every call, a dict lookup does not. The children are the metrics' own (the same
# samples, fork-safe in multiprocess mode); past the cap, a rare label tuple (an odd client
# method) just takes the ``labels()`` path.
class _BoundChildren:
    CAP = 2048

    def __init__(self, metric: Any) -> None:
        self.metric = metric
        self.children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *labels: str) -> Any:
        child = self.children.get(labels)
        if child is None:
            child = self.metric.labels(*labels)
            if len(self.children) < self.CAP:
                self.children[labels] = child
        return child


_http_requests = _BoundChildren(HTTP_REQUESTS)
_decisions = _BoundChildren(DECISIONS)
_check_latency = _BoundChildren(CHECK_LATENCY)


def init_app(app: Flask) -> None:
    # Each hook resolves the ``request``/``g`` proxies once, not once per attribute.
    @app.before_request
    def _start() -> None:
        ctx_g = g._get_current_object()  # type: ignore[attr-defined]
        ctx_g.started = perf_counter()
        incoming = request.environ.get("HTTP_X_REQUEST_ID", "")
        ctx_g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex

    @app.after_request
    def _finish(response: Response) -> Response:
        now = perf_counter()
        ctx_g = g._get_current_object()  # type: ignore[attr-defined]
        req = request._get_current_object()  # type: ignore[attr-defined]
        values = ctx_g.__dict__
        elapsed = now - values.get("started", now)
        request_id = values.get("request_id")
        response.headers["X-Request-ID"] = request_id if request_id is not None else ""
        rule = req.url_rule
        status = response.status_code
        method = req.method
        _http_requests(method, rule.rule if rule else "unmatched", str(status)).inc()
        result = values.get("check_result")
        if result is not None and not result.replayed:
            _decisions(result.kind, result.outcome, "true" if result.degraded else "false").inc()
            _check_latency(result.kind).observe(elapsed)
        if access_log.isEnabledFor(logging.INFO):
            principal = values.get("principal")
            # No client IP or body here: logs must hold no raw identifiers.
            access_log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": method,
                    "path": req.path,
                    "status": status,
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
