"""Mass assignment: a body may set only what its operation declares.

Every ``/v1`` body with an unknown or privileged field is refused with 422 problem+json
naming the field, and the database (every table, every row) is unchanged afterwards.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sqlalchemy import MetaData, select

from tests import factories
from tests.cases.conftest import add_case
from tests.conftest import make_key

PRIVILEGED = (
    "decision_id",
    "outcome",
    "score",
    "status",
    "resolved_by",
    "resolution_by",
    "assignee",
    "role",
    "roles",
    "scopes",
    "is_admin",
    "owner",
    "created_by",
    "degraded",
    "priority",
    "id",
)


def _dump(engine) -> dict[str, list[tuple[Any, ...]]]:
    meta = MetaData()
    meta.reflect(engine)
    out = {}
    with engine.connect() as conn:
        for name, table in sorted(meta.tables.items()):
            out[name] = sorted(map(repr, conn.execute(select(table)).all()))
    return out


@pytest.fixture
def world(app):
    runtime = app.extensions["riskctl"]
    case_id = add_case(runtime.sessions)
    key = make_key(app, "admin")
    rights = create_rights_key(app)
    return runtime, case_id, {"Authorization": f"Bearer {key}"}, {"Authorization": f"Bearer {rights}"}


def create_rights_key(app) -> str:
    from riskctl.apikeys import create_key

    return create_key(app.extensions["riskctl"].sessions, "acme-brands", ["rights_holder"])


def _bodies(case_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(path, who, a valid body) for every /v1 operation that takes a JSON body."""
    return [
        ("/v1/checks", "admin", factories.order()),
        ("/v1/checks", "admin", factories.review()),
        ("/v1/checks", "admin", factories.coupon()),
        ("/v1/checks", "admin", factories.listing()),
        ("/v1/lists", "admin", {"list": "block", "entity_type": "account", "value": "u-1", "reason": "r"}),
        (f"/v1/cases/{case_id}/claim", "admin", {"ttl_seconds": 60}),
        (f"/v1/cases/{case_id}/release", "admin", {"force": False}),
        (f"/v1/cases/{case_id}/resolve", "admin", {"resolution": "false_positive", "note": "n"}),
        ("/v1/cases/bulk-resolve", "admin", {"case_ids": [case_id], "resolution": "false_positive"}),
        (f"/v1/cases/{case_id}/appeal", "admin", {"reason": "mine"}),
        (f"/v1/cases/{case_id}/appeal-decision", "admin", {"upheld": True}),
        (f"/v1/cases/{case_id}/notes", "admin", {"body": "a note"}),
        (
            "/v1/complaints",
            "rights",
            {
                "right": "trademark",
                "listings": [{"listing_id": "lst-1", "shop_id": "shop-1"}],
                "evidence": "ours",
            },
        ),
        ("/v1/complaints/cmp-x/moves", "admin", {"move": "withdraw"}),
        ("/v1/brands", "rights", {"name": "Acme", "aliases": ["acme co"]}),
    ]


def _post(client, path, headers, body):
    return client.post(path, data=orjson.dumps(body), headers={**headers, "Content-Type": "application/json"})


def test_privileged_fields_are_refused_on_every_body_and_nothing_is_stored(client, world):
    runtime, case_id, admin, rights = world
    before = _dump(runtime.engine)
    tried = 0
    for field, (path, who, body) in ((f, b) for f in PRIVILEGED for b in _bodies(case_id)):
        if field in body:
            continue
        tried += 1
        resp = _post(client, path, admin if who == "admin" else rights, {**body, field: "x"})
        assert resp.status_code == 422, (path, field, resp.status_code, resp.get_data(as_text=True))
        assert resp.mimetype == "application/problem+json"
        problem = resp.json
        assert problem["status"] == 422
        assert any(e["field"] == field and e["message"] == "unknown field" for e in problem["errors"]), (
            path,
            problem,
        )
    assert tried >= len(PRIVILEGED) * 14
    assert _dump(runtime.engine) == before


def test_nested_privileged_fields_are_refused(client, world):
    runtime, case_id, admin, rights = world
    before = _dump(runtime.engine)
    order = factories.order()
    order["items"][0]["score"] = 0
    order["payment"]["outcome"] = "allow"
    resp = _post(client, "/v1/checks", admin, order)
    assert resp.status_code == 422
    fields = {e["field"] for e in resp.json["errors"]}
    assert {"items.0.score", "payment.outcome"} <= fields
    resp = _post(
        client,
        f"/v1/cases/{case_id}/resolve",
        admin,
        {"resolution": "confirmed_abuse", "actions": [{"type": "warn_seller", "assignee": "me"}]},
    )
    assert resp.status_code == 422
    assert any(e["field"] == "actions.0.assignee" for e in resp.json["errors"])
    resp = _post(
        client,
        "/v1/complaints",
        rights,
        {
            "right": "trademark",
            "listings": [{"listing_id": "l", "shop_id": "s", "status": "upheld"}],
            "evidence": "e",
        },
    )
    assert resp.status_code == 422
    assert any(e["field"] == "listings.0.status" for e in resp.json["errors"])
    assert _dump(runtime.engine) == before


def test_the_valid_bodies_are_accepted(client, world):
    """The refusals above are about the extra field: the same bodies without it succeed."""
    _runtime, case_id, admin, rights = world
    for path, who, body in _bodies(case_id)[:5]:
        resp = _post(client, path, admin if who == "admin" else rights, body)
        assert resp.status_code in (200, 201), (path, resp.get_data(as_text=True))
    resp = _post(client, "/v1/complaints", rights, _bodies(case_id)[12][2])
    assert resp.status_code == 201, resp.get_data(as_text=True)


def test_query_strings_cannot_set_fields_either(client, world):
    _runtime, _case_id, admin, _rights = world
    for path in ("/v1/cases?assignee_id=me", "/v1/lists?owner=me", "/v1/complaints?role=admin"):
        resp = client.get(path, headers=admin)
        assert resp.status_code == 422, (path, resp.status_code)
        assert resp.mimetype == "application/problem+json"
