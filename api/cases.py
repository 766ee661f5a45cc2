"""``/v1/cases``: the enforcement queue over the API (the UI calls the same service layer).

A key acts with the permissions of the roles its scopes name (``moderator``,
``senior_moderator``, ``compliance``, ``analyst``, ``admin``); see :mod:`riskctl.roles`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from flask import Blueprint, current_app, g, request
from flask.blueprints import BlueprintSetupState
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from werkzeug.routing import BaseConverter

from api.auth import require_permission
from riskctl import casework
from riskctl.casestate import Resolution
from riskctl.errors import Forbidden, MalformedJSON, RiskctlError, UnsupportedMediaType, ValidationFailed
from riskctl.events import validation_errors
from riskctl.roles import Permission, can

bp = Blueprint("cases", __name__, url_prefix="/v1/cases")


class CaseIdConverter(BaseConverter):
    """Any path segment but ``bulk-resolve``, so ``/v1/cases/bulk-resolve`` is only a POST
    (otherwise ``GET /v1/cases/<case_id>`` would also answer there)."""

    regex = r"(?!bulk-resolve$)[^/]+"


@bp.record_once
def _register_converter(state: BlueprintSetupState) -> None:
    state.app.url_map.converters.setdefault("case", CaseIdConverter)


ResolutionName = Literal["confirmed_abuse", "false_positive", "needs_info"]
ActionName = Literal[
    "cancel_order",
    "hide_review",
    "restrict_account",
    "revoke_coupon",
    "suspend_account",
    "take_down_listing",
    "warn_seller",
]
Text = Annotated[str, Field(min_length=1, max_length=casework.MAX_NOTE)]
# What str.strip() removes: a note or an appeal reason needs one character outside it, and the
# schema says so (otherwise a schema-valid "\r" would be refused as empty)
_WHITESPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
Content = Annotated[str, Field(min_length=1, max_length=casework.MAX_NOTE, pattern=f"[^{_WHITESPACE}]")]


def _whole(value: Any) -> Any:
    """JSON Schema counts 600.0 as an integer; so does the API."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class ClaimIn(_Body):
    ttl_seconds: Annotated[int, Field(ge=1, le=86400), BeforeValidator(_whole)] | None = None


class ReleaseIn(_Body):
    force: bool = False


class ActionIn(_Body):
    type: ActionName
    target: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class ResolveIn(_Body):
    resolution: ResolutionName
    note: Text | None = None
    actions: Annotated[list[ActionIn], Field(max_length=20)] = []


class BulkResolveIn(_Body):
    case_ids: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=64)]],
        Field(min_length=1, max_length=casework.MAX_BULK),
    ]
    resolution: ResolutionName
    note: Text | None = None
    actions: Annotated[list[ActionName], Field(max_length=20)] = []


class AppealIn(_Body):
    reason: Content


class AppealDecisionIn(_Body):
    upheld: bool
    note: Text | None = None


class NoteIn(_Body):
    body: Content


class QueueQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    status: Literal[tuple(casework.STATUS_FILTERS)] = "active"  # type: ignore[valid-type]
    sort: Literal[tuple(casework.SORTS)] = "priority"  # type: ignore[valid-type]
    assignee: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    q: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    limit: Annotated[int, Field(ge=1, le=500)] = 50
    offset: Annotated[int, Field(ge=0, le=1_000_000)] = 0


def _invalid(exc: ValidationError) -> RiskctlError:
    errors = validation_errors(exc)
    if errors and errors[0]["type"] == "json_invalid":
        return MalformedJSON("the body is not valid JSON")
    head = "; ".join(f"{e['field'] or '(body)'}: {e['message']}" for e in errors[:5])
    return ValidationFailed(head, errors=errors)


def _body(model: type[_Body], *, optional: bool = False) -> Any:
    raw = request.get_data(cache=False)
    if optional and not raw:
        return model()
    if request.mimetype != "application/json":
        raise UnsupportedMediaType("send the body as application/json")
    try:
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        raise _invalid(exc) from None


def _sessions() -> Any:
    return current_app.extensions["riskctl"].sessions


def _actor() -> str:
    return f"key:{g.principal.name}#{g.principal.key_id}"


@bp.get("")
@require_permission(Permission.CASE_VIEW)
def list_cases() -> dict[str, Any]:
    try:
        query = QueueQuery.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise _invalid(exc) from None
    items = casework.list_queue(
        _sessions(),
        query.queue,
        status=query.status,
        sort=query.sort,
        assignee=query.assignee,
        search=query.q,
        limit=query.limit,
        offset=query.offset,
    )
    return {
        "items": [c.as_dict() for c in items],
        "total": casework.count_queue(_sessions(), query.queue, status=query.status),
        "limit": query.limit,
        "offset": query.offset,
    }


@bp.get("/<case:case_id>")
@require_permission(Permission.CASE_VIEW)
def get_case(case_id: str) -> dict[str, Any]:
    return casework.get_case(_sessions(), case_id).as_dict()


@bp.post("/<case:case_id>/claim")
@require_permission(Permission.CASE_CLAIM)
def claim(case_id: str) -> dict[str, Any]:
    body = _body(ClaimIn, optional=True)
    ttl = body.ttl_seconds or current_app.extensions["riskctl"].settings.case_claim_minutes * 60
    return casework.claim(_sessions(), case_id, _actor(), ttl).as_dict()


@bp.post("/<case:case_id>/release")
@require_permission(Permission.CASE_CLAIM)
def release(case_id: str) -> dict[str, Any]:
    body = _body(ReleaseIn, optional=True)
    if body.force and not any(can(s, Permission.CASE_BULK_RESOLVE) for s in g.principal.scopes):
        raise Forbidden("releasing someone else's claim needs a senior moderator")
    return casework.release(_sessions(), case_id, _actor(), force=body.force).as_dict()


@bp.post("/<case:case_id>/resolve")
@require_permission(Permission.CASE_RESOLVE)
def resolve(case_id: str) -> dict[str, Any]:
    body = _body(ResolveIn)
    actions = [a.model_dump(exclude_none=True) for a in body.actions]
    return casework.resolve(
        _sessions(), case_id, _actor(), Resolution(body.resolution), body.note, actions
    ).as_dict()


@bp.post("/bulk-resolve")
@require_permission(Permission.CASE_BULK_RESOLVE)
def bulk_resolve() -> dict[str, Any]:
    body = _body(BulkResolveIn)
    n = casework.bulk_resolve(
        _sessions(),
        body.case_ids,
        Resolution(body.resolution),
        actor=_actor(),
        note=body.note,
        actions=body.actions,
    )
    return {"resolved": n}


@bp.post("/<case:case_id>/appeal")
@require_permission(Permission.CASE_APPEAL)
def appeal(case_id: str) -> dict[str, Any]:
    body = _body(AppealIn)
    return casework.appeal(_sessions(), case_id, _actor(), body.reason).as_dict()


@bp.post("/<case:case_id>/appeal-decision")
@require_permission(Permission.CASE_APPEAL_DECIDE)
def appeal_decision(case_id: str) -> dict[str, Any]:
    body = _body(AppealDecisionIn)
    return casework.decide_appeal(_sessions(), case_id, _actor(), body.upheld, body.note).as_dict()


@bp.post("/<case:case_id>/notes")
@require_permission(Permission.CASE_NOTE)
def add_note(case_id: str) -> tuple[dict[str, Any], int]:
    body = _body(NoteIn)
    note_id = casework.add_note(_sessions(), case_id, _actor(), body.body)
    return {"id": note_id, "case_id": case_id}, 201


# -- OpenAPI -------------------------------------------------------------------------------------
_CASE_SUMMARY = {
    "type": "object",
    "required": ["id", "queue", "kind", "subject_id", "status", "priority", "sla_due_at", "legal_moves"],
    "properties": {
        "id": {"type": "string"},
        "queue": {"type": "string"},
        "kind": {"type": "string"},
        "subject_id": {"type": "string"},
        "shop_id": {"type": ["string", "null"]},
        "status": {
            "type": "string",
            "enum": ["open", "claimed", "resolved", "appealed", "appeal_upheld", "appeal_rejected"],
        },
        "resolution": {"type": ["string", "null"]},
        "priority": {"type": "number"},
        "sla_due_at": {"type": "string", "format": "date-time"},
        "sla_breached": {"type": "boolean"},
        "claimed_by": {"type": ["string", "null"]},
        "claim_expires_at": {"type": ["string", "null"], "format": "date-time"},
        "legal_moves": {"type": "array", "items": {"type": "string"}},
    },
}


def openapi_parts(errors: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(paths, component schemas) for ``/v1/cases``, from the models that validate requests."""
    schemas: dict[str, Any] = {"CaseSummary": _CASE_SUMMARY}
    for model in (ClaimIn, ReleaseIn, ResolveIn, BulkResolveIn, AppealIn, AppealDecisionIn, NoteIn):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    schemas["CaseView"] = {
        "type": "object",
        "required": ["case", "decisions", "linked", "history", "group", "notes", "statements", "actions"],
        "properties": {
            "case": {"$ref": "#/components/schemas/CaseSummary"},
            **{
                k: {"type": "array", "items": {"type": "object"}}
                for k in (
                    "decisions",
                    "linked",
                    "history",
                    "group",
                    "notes",
                    "statements",
                    "actions",
                    "audit",
                )
            },
            "subject_outcomes": {"type": "object"},
        },
    }
    secured: list[dict[str, list[str]]] = [{"bearerAuth": []}]
    case_id = {
        "name": "case_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "maxLength": 64},
    }

    def ok(schema: str, code: str = "200") -> dict[str, Any]:
        return {
            code: {
                "description": "OK",
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
            }
        }

    def move(
        op_id: str, summary: str, model: str, perm: Permission, *, optional: bool = False
    ) -> dict[str, Any]:
        return {
            "post": {
                "operationId": op_id,
                "summary": f"{summary} (needs {perm.value})",
                "security": secured,
                "parameters": [case_id],
                "requestBody": {
                    "required": not optional,
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}},
                },
                "responses": {**ok("CaseSummary"), **errors(400, 401, 403, 404, 409, 413, 415, 422)},
            }
        }

    query = QueueQuery.model_json_schema()["properties"]
    params = [
        {"name": name, "in": "query", "schema": {k: v for k, v in prop.items() if k != "title"}}
        for name, prop in query.items()
    ]
    paths = {
        "/v1/cases": {
            "get": {
                "operationId": "listCases",
                "summary": "The queue: cases by queue, status and sort order (needs case_view)",
                "security": secured,
                "parameters": params,
                "responses": {
                    "200": {
                        "description": "A page of cases",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["items", "total"],
                                    "properties": {
                                        "items": {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/CaseSummary"},
                                        },
                                        "total": {"type": "integer"},
                                        "limit": {"type": "integer"},
                                        "offset": {"type": "integer"},
                                    },
                                }
                            }
                        },
                    },
                    **errors(400, 401, 403, 422),
                },
            }
        },
        "/v1/cases/{case_id}": {
            "get": {
                "operationId": "getCase",
                "summary": "A case with its evidence, notes, statements of reasons and actions (needs case_view)",
                "security": secured,
                "parameters": [case_id],
                "responses": {**ok("CaseView"), **errors(401, 403, 404)},
            }
        },
        "/v1/cases/{case_id}/claim": move(
            "claimCase",
            "Claim a case (locks it, with an expiry)",
            "ClaimIn",
            Permission.CASE_CLAIM,
            optional=True,
        ),
        "/v1/cases/{case_id}/release": move(
            "releaseCase",
            "Give a claimed case back to the queue",
            "ReleaseIn",
            Permission.CASE_CLAIM,
            optional=True,
        ),
        "/v1/cases/{case_id}/resolve": move(
            "resolveCase",
            "Resolve a claimed case, with enforcement actions",
            "ResolveIn",
            Permission.CASE_RESOLVE,
        ),
        "/v1/cases/{case_id}/appeal": move(
            "appealCase", "Record the subject's appeal", "AppealIn", Permission.CASE_APPEAL
        ),
        "/v1/cases/{case_id}/appeal-decision": move(
            "decideAppeal",
            "Uphold (reverses the actions) or reject an appeal",
            "AppealDecisionIn",
            Permission.CASE_APPEAL_DECIDE,
        ),
        "/v1/cases/{case_id}/notes": {
            "post": {
                "operationId": "addCaseNote",
                "summary": "Add a note (needs case_note)",
                "security": secured,
                "parameters": [case_id],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NoteIn"}}},
                },
                "responses": {
                    "201": {
                        "description": "Added",
                        "content": {
                            "application/json": {"schema": {"type": "object", "required": ["id", "case_id"]}}
                        },
                    },
                    **errors(400, 401, 403, 404, 413, 415, 422),
                },
            }
        },
        "/v1/cases/bulk-resolve": {
            "post": {
                "operationId": "bulkResolveCases",
                "summary": "Resolve many cases at once, all or nothing (needs case_bulk_resolve)",
                "security": secured,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/BulkResolveIn"}}
                    },
                },
                "responses": {
                    "200": {
                        "description": "How many were resolved",
                        "content": {
                            "application/json": {"schema": {"type": "object", "required": ["resolved"]}}
                        },
                    },
                    **errors(400, 401, 403, 404, 409, 413, 415, 422),
                },
            }
        },
    }
    return paths, schemas
