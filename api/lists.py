"""``/v1/lists``: allow and block lists, for analysts and admins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from flask import Blueprint, Response, current_app, g, request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from api.auth import require
from riskctl.errors import MalformedJSON, UnsupportedMediaType, ValidationFailed
from riskctl.events import validation_errors
from riskctl.models import ListEntry

bp = Blueprint("lists", __name__, url_prefix="/v1/lists")

ListName = Literal["allow", "block"]
EntityType = Literal["account", "shop", "device", "ip", "payment", "address", "brand"]


class ListEntryIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    list: ListName
    entity_type: EntityType
    value: Annotated[str, Field(min_length=1, max_length=200)]
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    expires_at: AwareDatetime | None = None


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    list: ListName | None = None
    entity_type: EntityType | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    offset: Annotated[int, Field(ge=0, le=1_000_000)] = 0  # past SQLite's 64-bit OFFSET is a 500


def entry_view(e: ListEntry) -> dict[str, Any]:
    def iso(t: datetime | None) -> str | None:
        return t.isoformat().replace("+00:00", "Z") if t else None

    return {
        "id": e.id,
        "list": e.list_name,
        "entity_type": e.entity_type,
        "label": e.label,
        "reason": e.reason,
        "source": e.source,
        "created_by": e.created_by,
        "created_at": iso(e.created_at),
        "expires_at": iso(e.expires_at),
    }


def _validate(model: type[BaseModel], data: Any, *, json_body: bytes | None = None) -> Any:
    try:
        if json_body is not None:
            return model.model_validate_json(json_body, strict=True)
        return model.model_validate(data)
    except ValidationError as exc:
        errors = validation_errors(exc)
        if errors and errors[0]["type"] == "json_invalid":
            raise MalformedJSON("the body is not valid JSON") from None
        head = "; ".join(f"{e['field'] or '(body)'}: {e['message']}" for e in errors[:5])
        raise ValidationFailed(head, errors=errors) from None


@bp.get("")
@require("analyst")
def list_entries() -> dict[str, Any]:
    query = _validate(ListQuery, request.args.to_dict())
    rows, total = current_app.extensions["riskctl"].lists.entries(
        query.list, query.entity_type, query.limit, query.offset
    )
    return {
        "items": [entry_view(r) for r in rows],
        "total": total,
        "limit": query.limit,
        "offset": query.offset,
    }


@bp.post("")
@require("analyst")
def add_entry() -> tuple[Response, int]:
    if request.mimetype != "application/json":
        raise UnsupportedMediaType("send the entry as application/json")
    body = _validate(ListEntryIn, None, json_body=request.get_data(cache=False))
    entry = current_app.extensions["riskctl"].lists.add(
        body.list,
        body.entity_type,
        body.value,
        reason=body.reason,
        actor=f"key:{g.principal.name}",
        expires_at=body.expires_at,
    )
    return Response(orjson.dumps(entry_view(entry)), mimetype="application/json"), 201


@bp.delete("/<int:entry_id>")
@require("analyst")
def remove_entry(entry_id: int) -> tuple[str, int]:
    current_app.extensions["riskctl"].lists.remove(entry_id, actor=f"key:{g.principal.name}")
    return "", 204
