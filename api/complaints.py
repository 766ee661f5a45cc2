"""``/v1/complaints`` and ``/v1/brands``: rights holders file and follow their own complaints
and register their brands; compliance staff work every complaint.

Object-level authorization: a key whose scopes give ``complaints_file`` but not
``complaints_work`` (a ``rights_holder`` key, named for the rights holder) sees only what
that rights holder owns; anything else answers 404, as if it did not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any, Literal, TypeVar

from flask import Blueprint, current_app, g, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.auth import count_request, require_permission
from riskctl.apikeys import Principal
from riskctl.complaints import MAX_LISTINGS, RIGHTS, ComplaintMove, ComplaintService, Status
from riskctl.complaints import create_brand as _create_brand
from riskctl.complaints import list_brands as _list_brands
from riskctl.errors import Forbidden, MalformedJSON, RiskctlError, UnsupportedMediaType, ValidationFailed
from riskctl.events import validation_errors
from riskctl.roles import Permission, can

bp = Blueprint("complaints", __name__, url_prefix="/v1")
F = TypeVar("F", bound=Callable[..., Any])

Id = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/+=-]*$")]
Phrase = Annotated[str, Field(min_length=2, max_length=100)]


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class ListingRef(_Body):
    listing_id: Id
    shop_id: Id


class ComplaintIn(_Body):
    right: Literal[RIGHTS]  # type: ignore[valid-type]
    listings: Annotated[list[ListingRef], Field(min_length=1, max_length=MAX_LISTINGS)]
    evidence: Annotated[str, Field(min_length=1, max_length=10_000)]
    brand_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    marketplace: Annotated[str, Field(min_length=1, max_length=40)] = "default"


class MoveIn(_Body):
    move: Literal[tuple(m.value for m in ComplaintMove)]  # type: ignore[valid-type]
    note: Annotated[str, Field(max_length=2000)] = ""


class ProofDocument(_Body):
    title: Annotated[str, Field(min_length=1, max_length=200)]
    kind: Literal["registration_certificate", "licence", "court_order", "other"]
    reference: Annotated[str, Field(min_length=1, max_length=200)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None


class BrandIn(_Body):
    name: Phrase
    aliases: Annotated[list[Phrase], Field(max_length=50)] = []
    protected_terms: Annotated[list[Phrase], Field(max_length=200)] = []
    reference_prices: dict[
        Annotated[str, Field(min_length=1, max_length=40)], Annotated[float, Field(gt=0, le=1e9)]
    ] = {}
    image_phashes: Annotated[
        list[Annotated[str, Field(pattern=r"^[0-9a-f]{16,256}$")]], Field(max_length=200)
    ] = []
    authorised_shops: Annotated[list[Id], Field(max_length=1000)] = []
    proof_documents: Annotated[list[ProofDocument], Field(max_length=50)] = []


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal[tuple(s.value for s in Status)] | None = None  # type: ignore[valid-type]
    limit: Annotated[int, Field(ge=1, le=500)] = 50
    offset: Annotated[int, Field(ge=0, le=1_000_000)] = 0


def _invalid(exc: ValidationError) -> RiskctlError:
    errors = validation_errors(exc)
    if errors and errors[0]["type"] == "json_invalid":
        return MalformedJSON("the body is not valid JSON")
    head = "; ".join(f"{e['field'] or '(body)'}: {e['message']}" for e in errors[:5])
    return ValidationFailed(head, errors=errors)


def _body(model: type[_Body]) -> Any:
    if request.mimetype != "application/json":
        raise UnsupportedMediaType("send the body as application/json")
    try:
        return model.model_validate_json(request.get_data(cache=False), strict=True)
    except ValidationError as exc:
        raise _invalid(exc) from None


def _service() -> ComplaintService:
    return current_app.extensions["riskctl"].extras["complaints"]  # type: ignore[no-any-return]


def _actor() -> str:
    return f"key:{g.principal.name}#{g.principal.key_id}"


def _owner() -> str | None:
    """The rights holder this key acts for, or None for staff (who see everything)."""
    if any(can(s, Permission.COMPLAINTS_WORK) for s in g.principal.scopes):
        return None
    return str(g.principal.name)


def _file_or_work(view: F) -> F:
    """Rights holders (their own complaints) and compliance staff (every complaint)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        runtime = current_app.extensions["riskctl"]
        principal: Principal = runtime.keys.verify(request.headers.get("Authorization"))
        count_request(principal)
        if not any(
            can(s, Permission.COMPLAINTS_FILE) or can(s, Permission.COMPLAINTS_WORK) for s in principal.scopes
        ):
            raise Forbidden(
                f"this key's scopes ({', '.join(sorted(principal.scopes))}) may neither file nor work complaints"
            )
        g.principal = principal
        return view(*args, **kwargs)

    wrapper.required_permission = Permission.COMPLAINTS_FILE  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


@bp.post("/complaints")
@require_permission(Permission.COMPLAINTS_FILE)
def file_complaint() -> tuple[dict[str, Any], int]:
    body = _body(ComplaintIn)
    view = _service().file(
        g.principal.name,
        listings=[item.model_dump() for item in body.listings],
        right=body.right,
        evidence=body.evidence,
        brand_id=body.brand_id,
        marketplace=body.marketplace,
        actor=_actor(),
    )
    return view, 201


@bp.get("/complaints")
@_file_or_work
def list_complaints() -> dict[str, Any]:
    try:
        q = ListQuery.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise _invalid(exc) from None
    return _service().list_complaints(owner=_owner(), status=q.status, limit=q.limit, offset=q.offset)


@bp.get("/complaints/<complaint_id>")
@_file_or_work
def get_complaint(complaint_id: str) -> dict[str, Any]:
    return _service().get(complaint_id, owner=_owner())


@bp.post("/complaints/<complaint_id>/moves")
@_file_or_work
def move_complaint(complaint_id: str) -> dict[str, Any]:
    body = _body(MoveIn)
    return _service().move(complaint_id, body.move, actor=_actor(), owner=_owner(), note=body.note)


@bp.post("/brands")
@require_permission(Permission.COMPLAINTS_FILE)
def create_brand() -> tuple[dict[str, Any], int]:
    body = _body(BrandIn)
    runtime = current_app.extensions["riskctl"]
    view = _create_brand(runtime.sessions, g.principal.name, body.model_dump(), actor=_actor())
    runtime.extras["registered_brands"].refresh()
    return view, 201


@bp.get("/brands")
@require_permission(Permission.COMPLAINTS_FILE)
def list_brands() -> dict[str, Any]:
    items = _list_brands(current_app.extensions["riskctl"].sessions, _owner())
    return {"items": items, "total": len(items)}


# -- OpenAPI -------------------------------------------------------------------------------------
def openapi_parts(errors: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    schemas: dict[str, Any] = {}
    for model in (ComplaintIn, MoveIn, BrandIn):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    status = {"type": "string", "enum": [s.value for s in Status]}
    schemas["Complaint"] = {
        "type": "object",
        "required": ["id", "owner", "right", "status", "listings", "legal_moves"],
        "properties": {
            "id": {"type": "string"},
            "owner": {"type": "string"},
            "brand_id": {"type": ["string", "null"]},
            "right": {"type": "string"},
            "status": status,
            "marketplace": {"type": "string"},
            "listings": {"type": "array", "items": {"$ref": "#/components/schemas/ListingRef"}},
            "evidence": {"type": "string"},
            "priority": {"type": "number"},
            "due_at": {"type": ["string", "null"], "format": "date-time"},
            "outcome": {"type": ["string", "null"]},
            "legal_moves": {"type": "array", "items": {"type": "string"}},
            "history": {"type": "array", "items": {"type": "object"}},
            "complainant": {"type": "object"},
            "case_id": {"type": "string"},
        },
    }
    schemas["Brand"] = {
        "type": "object",
        "required": ["id", "owner", "name"],
        "properties": {"id": {"type": "string"}, "owner": {"type": "string"}, "name": {"type": "string"}},
    }
    secured: list[dict[str, list[str]]] = [{"bearerAuth": []}]
    complaint_id = {
        "name": "complaint_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "maxLength": 64},
    }

    def ok(schema: dict[str, Any], code: str = "200", what: str = "OK") -> dict[str, Any]:
        return {code: {"description": what, "content": {"application/json": {"schema": schema}}}}

    def ref(name: str) -> dict[str, Any]:
        return {"$ref": f"#/components/schemas/{name}"}

    def body(name: str) -> dict[str, Any]:
        return {"required": True, "content": {"application/json": {"schema": ref(name)}}}

    page = {
        "type": "object",
        "required": ["items", "total"],
        "properties": {"items": {"type": "array", "items": ref("Complaint")}, "total": {"type": "integer"}},
    }
    paths = {
        "/v1/complaints": {
            "post": {
                "operationId": "fileComplaint",
                "summary": "File an infringement complaint over one or many listings (rights_holder)",
                "security": secured,
                "requestBody": body("ComplaintIn"),
                "responses": {
                    **ok(ref("Complaint"), "201", "Filed"),
                    **errors(400, 401, 403, 404, 409, 413, 415, 422),
                },
            },
            "get": {
                "operationId": "listComplaints",
                "summary": "Complaints: a rights holder's own, or every one for compliance staff",
                "security": secured,
                "parameters": [
                    {"name": "status", "in": "query", "required": False, "schema": status},
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                    },
                    {
                        "name": "offset",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 0, "maximum": 1000000},
                    },
                ],
                "responses": {**ok(page), **errors(401, 403, 422)},
            },
        },
        "/v1/complaints/{complaint_id}": {
            "get": {
                "operationId": "getComplaint",
                "summary": "One complaint with its history (a rights holder: only their own, else 404)",
                "security": secured,
                "parameters": [complaint_id],
                "responses": {**ok(ref("Complaint")), **errors(401, 403, 404)},
            }
        },
        "/v1/complaints/{complaint_id}/moves": {
            "post": {
                "operationId": "moveComplaint",
                "summary": "One workflow move (staff: review, send_notice, counter_notice, take_down, restore, "
                "reject; the rights holder: withdraw); an illegal move is a 409",
                "security": secured,
                "parameters": [complaint_id],
                "requestBody": body("MoveIn"),
                "responses": {**ok(ref("Complaint")), **errors(400, 401, 403, 404, 409, 413, 415, 422)},
            }
        },
        "/v1/brands": {
            "post": {
                "operationId": "registerBrand",
                "summary": "Register a brand (rights_holder): names, terms, prices, image hashes, authorised shops, proof",
                "security": secured,
                "requestBody": body("BrandIn"),
                "responses": {
                    **ok(ref("Brand"), "201", "Registered"),
                    **errors(400, 401, 403, 409, 413, 415, 422),
                },
            },
            "get": {
                "operationId": "listBrands",
                "summary": "Registered brands (a rights holder: only their own)",
                "security": secured,
                "responses": {
                    **ok(
                        {"type": "object", "properties": {"items": {"type": "array", "items": ref("Brand")}}}
                    ),
                    **errors(401, 403),
                },
            },
        },
    }
    # stateful testing (schemathesis) follows these from a filed complaint to its reads and moves
    by_id = {"complaint_id": "$response.body#/id"}
    filed: Any = paths["/v1/complaints"]["post"]
    filed["responses"]["201"]["links"] = {
        "GetComplaint": {"operationId": "getComplaint", "parameters": by_id},
        "MoveComplaint": {"operationId": "moveComplaint", "parameters": by_id},
    }
    return paths, schemas
