"""``/healthz`` (the process answers), ``/readyz`` (its dependencies do), ``/metrics``."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text

from api.auth import require
from api.observability import metrics_response

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    runtime = current_app.extensions["riskctl"]
    checks: dict[str, bool] = {}
    try:
        with runtime.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = True
    except Exception:
        checks["database"] = False
    try:
        checks["redis"] = bool(runtime.redis.ping())
    except Exception:
        checks["redis"] = False
    checks["rules"] = runtime.policy.current is not None
    checks["models"] = runtime.detectors_ready()
    ready = all(checks.values())
    body = {
        "status": "ready" if ready else "not ready",
        "checks": checks,
        "rulepack_version": runtime.policy.current.version,
        "detectors": runtime.models.status(),
    }
    return jsonify(body), (200 if ready else 503)


@bp.get("/metrics")
@require("metrics")
def metrics() -> Response:
    return metrics_response()
