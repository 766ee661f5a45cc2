"""``GET /v1/cases/export.csv``: the queue as a spreadsheet for analysts, formula-safe."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from flask import Blueprint, Response, current_app, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.auth import require_permission
from riskctl import casework
from riskctl.csvsafe import to_csv
from riskctl.errors import ValidationFailed
from riskctl.events import validation_errors
from riskctl.roles import Permission

bp = Blueprint("exports", __name__, url_prefix="/v1")

COLUMNS = (
    "id",
    "queue",
    "kind",
    "subject_id",
    "shop_id",
    "status",
    "resolution",
    "priority",
    "max_score",
    "money_at_stake",
    "decision_count",
    "title",
    "assignee",
    "opened_at",
    "sla_due_at",
    "resolved_at",
    "resolved_by",
    "appeal_reason",
)
MAX_ROWS = 10_000


class ExportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    status: Literal[tuple(casework.STATUS_FILTERS)] = "all"  # type: ignore[valid-type]
    limit: Annotated[int, Field(ge=1, le=MAX_ROWS)] = 1000


@bp.get("/cases/export.csv")
@require_permission(Permission.CASE_VIEW)
def export_cases() -> Response:
    try:
        q = ExportQuery.model_validate(request.args.to_dict())
    except ValidationError as exc:
        errors = validation_errors(exc)
        raise ValidationFailed(
            "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]), errors=errors
        ) from None
    items = casework.list_queue(
        current_app.extensions["riskctl"].sessions, q.queue, status=q.status, sort="priority", limit=q.limit
    )
    body = to_csv(COLUMNS, ([getattr(c, col) for col in COLUMNS] for c in items))
    response = Response(body, mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="cases.csv"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def openapi_parts(errors: Any) -> dict[str, Any]:
    return {
        "/v1/cases/export.csv": {
            "get": {
                "operationId": "exportCases",
                "summary": "The queue as CSV for spreadsheets; text cells that would run as formulas start with ' (needs case_view)",
                "security": [{"bearerAuth": []}],
                "parameters": [
                    {
                        "name": "queue",
                        "in": "query",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 32},
                    },
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string", "enum": list(casework.STATUS_FILTERS), "default": "all"},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ROWS, "default": 1000},
                    },
                ],
                "responses": {
                    "200": {
                        "description": f"One row per case: {', '.join(COLUMNS)}",
                        "content": {"text/csv": {"schema": {"type": "string"}}},
                    },
                    **errors(401, 403, 422),
                },
            }
        }
    }
