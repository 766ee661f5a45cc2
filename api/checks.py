"""``POST /v1/checks`` and ``GET /v1/decisions/<id>``."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, g, request

from api.auth import require
from riskctl.errors import UnsupportedMediaType

bp = Blueprint("checks", __name__, url_prefix="/v1")


def _json_body() -> bytes:
    if request.mimetype != "application/json":
        raise UnsupportedMediaType(
            f"send the event as application/json, not {request.mimetype or 'no content type'}"
        )
    return request.get_data(cache=False)


@bp.post("/checks")
@require("pipeline", inline_limit=True)
def create_check() -> Response:
    result = current_app.extensions["riskctl"].checks.check(_json_body(), g.rate_limit)
    g.check_result = result
    return Response(result.body, status=200, mimetype="application/json")


@bp.get("/decisions/<decision_id>")
@require("pipeline", "analyst")
def get_decision(decision_id: str) -> dict[str, object]:
    return current_app.extensions["riskctl"].checks.get_decision(decision_id)
