"""``/openapi.json``: an OpenAPI 3.1 document built from the same pydantic models that
validate requests, so the contract and the code cannot disagree."""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import Blueprint, Response, jsonify

from riskctl import __version__
from riskctl.events import event_json_schema

bp = Blueprint("openapi", __name__)

_PROBLEM = {"$ref": "#/components/responses/Problem"}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): _PROBLEM for c in codes}


@cache
def build_spec() -> dict[str, Any]:
    event_schema = event_json_schema()
    components = dict(event_schema.pop("$defs", {}))
    components["Event"] = event_schema
    components["Reason"] = {
        "type": "object",
        "required": ["code", "source", "description"],
        "properties": {
            "code": {"type": "string"},
            "source": {"type": "string", "enum": ["rule", "detector", "list"]},
            "description": {"type": "string"},
        },
    }
    components["CheckResponse"] = {
        "type": "object",
        "required": [
            "decision_id",
            "event_id",
            "kind",
            "outcome",
            "score",
            "reasons",
            "degraded",
            "rulepack_version",
        ],
        "properties": {
            "decision_id": {"type": "string"},
            "event_id": {"type": "string"},
            "kind": {"type": "string", "enum": ["order", "review", "coupon_redemption", "listing"]},
            "outcome": {"type": "string", "enum": ["allow", "review", "block"]},
            "score": {"type": "number", "minimum": 0, "maximum": 100},
            "reasons": {"type": "array", "items": {"$ref": "#/components/schemas/Reason"}},
            "degraded": {"type": "boolean"},
            "rulepack_version": {"type": "string"},
        },
    }
    components["Decision"] = {
        "type": "object",
        "required": ["decision_id", "event_id", "kind", "outcome", "score", "signals", "features"],
        "properties": {
            **components["CheckResponse"]["properties"],
            "detector_versions": {"type": "object"},
            "signals": {"type": "array", "items": {"type": "object"}},
            "features": {"type": "object"},
            "latency_ms": {"type": "number"},
            "created_at": {"type": "string", "format": "date-time"},
        },
    }
    components["Problem"] = {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": ["string", "null"]},
            "request_id": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "field": {"type": "string"},
                        "message": {"type": "string"},
                        "type": {"type": "string"},
                    },
                },
            },
        },
    }
    from api.lists import ListEntryIn

    entry_in = ListEntryIn.model_json_schema(ref_template="#/components/schemas/{model}")
    components["ListEntryIn"] = entry_in
    components["ListEntry"] = {
        "type": "object",
        "required": ["id", "list", "entity_type", "label", "reason", "created_at"],
        "properties": {
            "id": {"type": "integer"},
            "list": {"type": "string", "enum": ["allow", "block"]},
            "entity_type": entry_in["properties"]["entity_type"],
            "label": {"type": "string"},
            "reason": {"type": "string"},
            "source": {"type": "string"},
            "created_by": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "expires_at": {"type": ["string", "null"], "format": "date-time"},
        },
    }
    problem_response = {
        "description": "An RFC 9457 problem",
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    secured: list[dict[str, list[str]]] = [{"bearerAuth": []}]
    from api.cases import openapi_parts

    case_paths, case_schemas = openapi_parts(_errors)
    components.update(case_schemas)
    from api.reputation import openapi_parts as reputation_parts

    reputation_paths, reputation_schemas = reputation_parts(_errors)
    case_paths.update(reputation_paths)
    components.update(reputation_schemas)
    from api.complaints import openapi_parts as complaint_parts

    complaint_paths, complaint_schemas = complaint_parts(_errors)
    case_paths.update(complaint_paths)
    components.update(complaint_schemas)
    from api.exports import openapi_parts as export_parts

    case_paths.update(export_parts(_errors))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "riskctl",
            "version": __version__,
            "description": "Risk checks for marketplace orders, reviews, coupon redemptions and listings.",
        },
        "servers": [{"url": "/"}],
        "paths": {
            "/v1/checks": {
                "post": {
                    "operationId": "createCheck",
                    "summary": "Decide one event (idempotent on event_id)",
                    "security": secured,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Event"}}},
                    },
                    "responses": {
                        "200": {
                            "description": "The decision (the stored one, byte-identical, for a repeated event_id)",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/CheckResponse"}}
                            },
                            "links": {
                                "GetDecision": {
                                    "operationId": "getDecision",
                                    "parameters": {"decision_id": "$response.body#/decision_id"},
                                }
                            },
                        },
                        **_errors(400, 401, 403, 409, 413, 415, 422, 429, 500),
                    },
                }
            },
            "/v1/decisions/{decision_id}": {
                "get": {
                    "operationId": "getDecision",
                    "summary": "A stored decision with its signals and features",
                    "security": secured,
                    "parameters": [
                        {
                            "name": "decision_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "maxLength": 64},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The decision",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Decision"}}
                            },
                        },
                        **_errors(401, 403, 404, 500),
                    },
                }
            },
            "/v1/lists": {
                "get": {
                    "operationId": "listEntries",
                    "summary": "Allow/block list entries (analyst or admin)",
                    "security": secured,
                    "parameters": [
                        {
                            "name": "list",
                            "in": "query",
                            "schema": {"type": "string", "enum": ["allow", "block"]},
                        },
                        {
                            "name": "entity_type",
                            "in": "query",
                            "schema": entry_in["properties"]["entity_type"],
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                        },
                        {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 1_000_000}},
                    ],
                    "responses": {
                        "200": {
                            "description": "A page of entries",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "items": {
                                                "type": "array",
                                                "items": {"$ref": "#/components/schemas/ListEntry"},
                                            },
                                            "total": {"type": "integer"},
                                        },
                                    }
                                }
                            },
                        },
                        **_errors(400, 401, 403, 422),
                    },
                },
                "post": {
                    "operationId": "addListEntry",
                    "summary": "Put an entity on a list (values of devices, IPs, cards, addresses are stored hashed)",
                    "security": secured,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/ListEntryIn"}}
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "The entry",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/ListEntry"}}
                            },
                            "links": {
                                "RemoveEntry": {
                                    "operationId": "removeListEntry",
                                    "parameters": {"entry_id": "$response.body#/id"},
                                }
                            },
                        },
                        **_errors(400, 401, 403, 409, 413, 415, 422),
                    },
                },
            },
            "/v1/lists/{entry_id}": {
                "delete": {
                    "operationId": "removeListEntry",
                    "summary": "Take an entry off its list",
                    "security": secured,
                    "parameters": [
                        {"name": "entry_id", "in": "path", "required": True, "schema": {"type": "integer"}}
                    ],
                    "responses": {"204": {"description": "Removed"}, **_errors(401, 403, 404)},
                }
            },
            **case_paths,
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "Liveness",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "alive",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "Readiness: database, Redis, rules and models",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "ready",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "503": {
                            "description": "not ready",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics (key with the metrics scope)",
                    "security": secured,
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        **_errors(401, 403),
                    },
                }
            },
        },
        "components": {
            "schemas": components,
            "responses": {"Problem": problem_response},
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "riskctl API key"}
            },
        },
        "security": secured,
    }


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(build_spec())
