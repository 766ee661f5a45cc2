"""``GET /v1/reputation/<subject_type>/<subject_id>``: a subject's score and what moved it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

from api.auth import require
from riskctl.errors import NotFound
from riskctl.reputation import SUBJECT_TYPES, ReputationStore

bp = Blueprint("reputation", __name__, url_prefix="/v1/reputation")


@bp.get("/<subject_type>/<subject_id>")
@require("analyst", "moderator", "senior_moderator", "compliance")
def get_reputation(subject_type: str, subject_id: str) -> dict[str, Any]:
    if subject_type not in SUBJECT_TYPES:
        raise NotFound(f"no subject type {subject_type!r}; one of {', '.join(SUBJECT_TYPES)}")
    store: ReputationStore = current_app.extensions["riskctl"].extras["reputation"]
    return store.explain(subject_type, subject_id)


def openapi_parts(errors: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    schema = {
        "type": "object",
        "required": ["subject_type", "subject_id", "score", "alpha", "beta", "n", "history"],
        "properties": {
            "subject_type": {"type": "string", "enum": list(SUBJECT_TYPES)},
            "subject_id": {"type": "string"},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "alpha": {"type": "number"},
            "beta": {"type": "number"},
            "n": {"type": "number", "minimum": 0},
            "prior": {"type": "object"},
            "half_life_days": {"type": "number"},
            "events": {"type": "integer"},
            "history": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["at", "reason", "ref", "delta_alpha", "delta_beta", "weight_now"],
                    "properties": {
                        "id": {"type": "integer"},
                        "at": {"type": "string", "format": "date-time"},
                        "reason": {"type": "string"},
                        "ref": {"type": "string"},
                        "actor": {"type": "string"},
                        "delta_alpha": {"type": "number"},
                        "delta_beta": {"type": "number"},
                        "reverses": {"type": ["integer", "null"]},
                        "weight_now": {"type": "number"},
                    },
                },
            },
        },
    }
    paths = {
        "/v1/reputation/{subject_type}/{subject_id}": {
            "get": {
                "operationId": "getReputation",
                "summary": "A subject's reputation (Beta posterior mean, decayed) with the history that explains it "
                "(scopes: analyst, moderator, senior_moderator, compliance, admin)",
                "security": [{"bearerAuth": []}],
                "parameters": [
                    {
                        "name": "subject_type",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": list(SUBJECT_TYPES)},
                    },
                    {
                        "name": "subject_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The score",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Reputation"}}
                        },
                    },
                    **errors(401, 403, 404, 422),
                },
            }
        }
    }
    return paths, {"Reputation": schema}
