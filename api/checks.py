"""``POST /v1/checks`` and ``GET /v1/decisions/<id>``."""

from __future__ import annotations

from flask import Blueprint, Request, Response, current_app, g, request

from api.auth import require
from riskctl.errors import UnsupportedMediaType

bp = Blueprint("checks", __name__, url_prefix="/v1")


def _json_body(req: Request) -> bytes:
    # the exact header the pipeline sends needs no parsing; anything else is parsed as before
    if req.environ.get("CONTENT_TYPE") != "application/json" and req.mimetype != "application/json":
        raise UnsupportedMediaType(
            f"send the event as application/json, not {req.mimetype or 'no content type'}"
        )
    return req.get_data(cache=False)


@bp.post("/checks")
@require("pipeline", inline_limit=True)
def create_check() -> Response:
    ctx_g = g._get_current_object()  # type: ignore[attr-defined]
    result = current_app.extensions["riskctl"].checks.check(
        _json_body(request._get_current_object()),  # type: ignore[attr-defined]
        ctx_g.rate_limit,
    )
    ctx_g.check_result = result
    # content_type rather than mimetype: the same header without the charset lookup
    return Response(result.body, status=200, content_type="application/json")


@bp.get("/decisions/<decision_id>")
@require("pipeline", "analyst")
def get_decision(decision_id: str) -> dict[str, object]:
    return current_app.extensions["riskctl"].checks.get_decision(decision_id)
