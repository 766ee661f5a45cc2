"""``/v1/cases`` over HTTP: evidence from real checks, every move, 409/403/422 problems."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.openapi import build_spec
from riskctl.cases import case_labels
from tests import factories
from tests.cases.conftest import add_case
from tests.conftest import make_key

PROBLEM = "application/problem+json"
SCOPES = ("pipeline", "analyst", "moderator", "senior_moderator", "compliance", "admin", "metrics")


def _flag_ring(client, headers):
    """Two buyers on one phone, card and address ordering fast from one shop: a flagged order."""
    for i in range(5):
        r = client.post(
            "/v1/checks",
            json=factories.order(
                buyer_id="ring-a" if i % 2 == 0 else "ring-b",
                shop_id="shop-r",
                device_id="ring-phone",
                occurred_at=f"2026-11-21T09:{i * 3:02d}:00Z",
            ),
            headers=headers,
        )
        assert r.status_code == 200


@pytest.fixture
def keys(app):
    return {scope: {"Authorization": f"Bearer {make_key(app, scope)}"} for scope in SCOPES}


def _problem(r, status):
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.mimetype == PROBLEM
    return r.get_json()


def test_case_page_shows_the_evidence(client, runtime, keys):
    _flag_ring(client, keys["pipeline"])
    items = client.get("/v1/cases?queue=orders", headers=keys["moderator"]).get_json()["items"]
    assert [(c["subject_id"], c["status"], c["legal_moves"]) for c in items] == [
        ("ring-a", "open", ["claim"])
    ]
    case_id = items[0]["id"]
    related = add_case(
        runtime.sessions, queue="reviews", kind="review", subject_id="ring-c", shop_id="shop-r"
    )
    add_case(runtime.sessions, queue="reviews", kind="review", subject_id="stranger", shop_id="shop-z")
    view = client.get(f"/v1/cases/{case_id}", headers=keys["moderator"]).get_json()
    (decision,) = view["decisions"]
    assert decision["outcome"] in {"review", "block"}
    hit = decision["rule_hits"][0]
    # a rule hit carries the values it read and its policy reference
    assert hit["status"] == "hit" and hit["details"] and hit["policy"]
    assert all(k.startswith("velocity.") for k in decision["velocity"]) and decision["velocity"]
    assert decision["event"]["buyer_id"] == "ring-a"
    assert "ring-phone" not in str(decision["event"])  # devices are stored as keyed hashes
    linked = {link["entity"]: link["accounts"] for link in view["linked"]}
    assert linked["device"] == ["ring-b"] and linked["card"] == ["ring-b"]
    assert [c["id"] for c in view["group"]] == [related]  # same shop, other queue
    assert view["subject_outcomes"] and sum(view["subject_outcomes"].values()) == 3


def test_a_case_worked_end_to_end_over_the_api(client, runtime, keys):
    _flag_ring(client, keys["pipeline"])
    case_id = client.get("/v1/cases", headers=keys["moderator"]).get_json()["items"][0]["id"]
    mod, senior = keys["moderator"], keys["senior_moderator"]

    r = client.post(f"/v1/cases/{case_id}/claim", headers=mod)
    assert r.status_code == 200 and r.get_json()["status"] == "claimed"
    held = datetime.fromisoformat(r.get_json()["claim_expires_at"]) - datetime.now(UTC)
    assert timedelta(minutes=25) < held <= timedelta(minutes=30)  # RISKCTL_CASE_CLAIM_MINUTES
    # another key cannot take or resolve it: 409 problem naming the claimant
    other = {"Authorization": f"Bearer {make_key(client.application, 'moderator')}"}
    assert "claimed by" in _problem(client.post(f"/v1/cases/{case_id}/claim", headers=other), 409)["detail"]
    r = client.post(
        f"/v1/cases/{case_id}/resolve",
        json={
            "resolution": "confirmed_abuse",
            "note": "ring",
            "actions": [{"type": "cancel_order"}, {"type": "suspend_account"}],
        },
        headers=mod,
    )
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["status"] == "resolved" and r.get_json()["legal_moves"] == ["appeal"]
    # resolving twice is an illegal move
    p = _problem(
        client.post(f"/v1/cases/{case_id}/resolve", json={"resolution": "false_positive"}, headers=mod), 409
    )
    assert p["type"] == "urn:riskctl:problem:conflict" and "resolved" in p["detail"]
    # a moderator may not record or decide appeals; a senior moderator may
    _problem(client.post(f"/v1/cases/{case_id}/appeal", json={"reason": "mine"}, headers=mod), 403)
    assert (
        client.post(f"/v1/cases/{case_id}/appeal", json={"reason": "mine"}, headers=senior).status_code == 200
    )
    _problem(client.post(f"/v1/cases/{case_id}/appeal-decision", json={"upheld": True}, headers=mod), 403)
    r = client.post(
        f"/v1/cases/{case_id}/appeal-decision",
        json={"upheld": True, "note": "card was shared legitimately"},
        headers=senior,
    )
    assert r.status_code == 200 and r.get_json()["status"] == "appeal_upheld"
    _problem(client.post(f"/v1/cases/{case_id}/appeal-decision", json={"upheld": False}, headers=senior), 409)

    view = client.get(f"/v1/cases/{case_id}", headers=mod).get_json()
    types = sorted(a["type"] for a in view["actions"])
    assert types == ["cancel_order", "reinstate_account", "reinstate_order", "suspend_account"]
    assert len(view["statements"]) == 2
    assert [a["action"] for a in view["audit"]][:3] == ["case.claim", "case.resolve", "action.enqueue"]
    # an upheld appeal turns the case's events into "legitimate" labels
    with runtime.engine.connect() as conn:
        labels = case_labels(conn)
    assert labels and not any(labels.values())


def test_notes_and_release(client, runtime, keys):
    case_id = add_case(runtime.sessions)
    r = client.post(f"/v1/cases/{case_id}/notes", json={"body": "<b>bold</b>"}, headers=keys["analyst"])
    assert r.status_code == 201
    assert (
        client.get(f"/v1/cases/{case_id}", headers=keys["analyst"]).get_json()["notes"][0]["body"]
        == "<b>bold</b>"
    )
    assert (
        client.post(
            f"/v1/cases/{case_id}/claim", json={"ttl_seconds": 120}, headers=keys["moderator"]
        ).status_code
        == 200
    )
    # someone else's claim: only a senior moderator may force it open
    _problem(
        client.post(f"/v1/cases/{case_id}/release", json={"force": True}, headers=keys["compliance"]), 403
    )
    _problem(client.post(f"/v1/cases/{case_id}/release", headers=keys["senior_moderator"]), 409)
    r = client.post(f"/v1/cases/{case_id}/release", json={"force": True}, headers=keys["senior_moderator"])
    assert r.status_code == 200 and r.get_json()["status"] == "open"
    _problem(client.post(f"/v1/cases/{case_id}/release", headers=keys["moderator"]), 409)


def test_bulk_resolve_over_the_api(client, runtime, keys):
    ids = [add_case(runtime.sessions, subject_id=f"b{i}") for i in range(3)]
    body = {"case_ids": ids, "resolution": "false_positive"}
    _problem(client.post("/v1/cases/bulk-resolve", json=body, headers=keys["moderator"]), 403)
    r = client.post("/v1/cases/bulk-resolve", json=body, headers=keys["senior_moderator"])
    assert r.status_code == 200 and r.get_json() == {"resolved": 3}
    assert _problem(client.post("/v1/cases/bulk-resolve", json=body, headers=keys["senior_moderator"]), 409)[
        "cases"
    ]


BAD_BODIES = [
    ("/resolve", {"resolution": "guilty"}, 422),
    ("/resolve", {"resolution": "confirmed_abuse", "actions": [{"type": "ban_forever"}]}, 422),
    ("/resolve", {"resolution": "confirmed_abuse", "extra": 1}, 422),
    ("/claim", {"ttl_seconds": 0}, 422),
    ("/claim", {"ttl_seconds": "60"}, 422),
    ("/notes", {"body": ""}, 422),
    ("/notes", {"body": "x" * 5001}, 422),
    ("/appeal", {}, 422),
    ("/appeal-decision", {"upheld": "yes"}, 422),
]


def test_bad_bodies_are_422_problems(client, runtime, keys):
    case_id = add_case(runtime.sessions)
    for path, body, status in BAD_BODIES:
        p = _problem(client.post(f"/v1/cases/{case_id}{path}", json=body, headers=keys["admin"]), status)
        assert p["errors"], (path, body)


def test_malformed_and_unknown(client, runtime, keys):
    case_id = add_case(runtime.sessions)
    admin = keys["admin"]
    _problem(
        client.post(f"/v1/cases/{case_id}/notes", data="{", content_type="application/json", headers=admin),
        400,
    )
    _problem(
        client.post(f"/v1/cases/{case_id}/notes", data="body=x", content_type="text/plain", headers=admin),
        415,
    )
    _problem(client.get("/v1/cases/case_nope", headers=admin), 404)
    _problem(client.post("/v1/cases/case_nope/claim", headers=admin), 404)
    _problem(client.get("/v1/cases?status=bogus", headers=admin), 422)
    _problem(client.get("/v1/cases?limit=0", headers=admin), 422)
    _problem(client.get("/v1/cases"), 401)


# (method, path, body, which scopes may) - every /v1/cases route; a new route must be added here.
ROUTES = [
    ("GET", "/v1/cases", None, {"analyst", "moderator", "senior_moderator", "compliance", "admin"}),
    ("GET", "/v1/cases/{id}", None, {"analyst", "moderator", "senior_moderator", "compliance", "admin"}),
    ("GET", "/v1/cases/export.csv", None, {"analyst", "moderator", "senior_moderator", "compliance", "admin"}),
    ("POST", "/v1/cases/{id}/claim", {}, {"moderator", "senior_moderator", "compliance", "admin"}),
    ("POST", "/v1/cases/{id}/release", {}, {"moderator", "senior_moderator", "compliance", "admin"}),
    (
        "POST",
        "/v1/cases/{id}/resolve",
        {"resolution": "false_positive"},
        {"moderator", "senior_moderator", "compliance", "admin"},
    ),
    (
        "POST",
        "/v1/cases/bulk-resolve",
        {"case_ids": ["{id}"], "resolution": "false_positive"},
        {"senior_moderator", "admin"},
    ),
    ("POST", "/v1/cases/{id}/appeal", {"reason": "r"}, {"senior_moderator", "compliance", "admin"}),
    ("POST", "/v1/cases/{id}/appeal-decision", {"upheld": True}, {"senior_moderator", "admin"}),
    (
        "POST",
        "/v1/cases/{id}/notes",
        {"body": "n"},
        {"analyst", "moderator", "senior_moderator", "compliance", "admin"},
    ),
]


def test_the_route_matrix_covers_every_cases_route(app):
    served = {
        (m, r.rule.replace("<case:case_id>", "{id}"))
        for r in app.url_map.iter_rules()
        if r.rule.startswith("/v1/cases")
        for m in r.methods - {"HEAD", "OPTIONS"}
    }
    assert served == {(m, p) for m, p, _, _ in ROUTES}
    documented = {
        (m.upper(), p.replace("{case_id}", "{id}"))
        for p, ops in build_spec()["paths"].items()
        if p.startswith("/v1/cases")
        for m in ops
    }
    assert documented == served


def test_scope_matrix(client, runtime, keys):
    """Every route and every scope: allowed scopes get past authorization, the rest get a 403."""
    for method, path, body, allowed in ROUTES:
        for scope in SCOPES:
            case_id = add_case(runtime.sessions)
            url = path.replace("{id}", case_id)
            json_body = (
                None if body is None else {k: ([case_id] if v == ["{id}"] else v) for k, v in body.items()}
            )
            r = client.open(url, method=method, json=json_body, headers=keys[scope])
            where = f"{scope} {method} {path}: {r.status_code} {r.get_data(as_text=True)[:200]}"
            if scope in allowed:
                # past authorization: the move itself may still be illegal for an open case
                assert r.status_code in (200, 201, 409), where
            else:
                assert r.status_code == 403 and r.mimetype == PROBLEM, where


def test_bulk_resolve_path_is_not_a_case_id(client, keys):
    assert "GET" not in client.options("/v1/cases/bulk-resolve").headers["Allow"]
    _problem(client.get("/v1/cases/bulk-resolve", headers=keys["admin"]), 405)
    assert "GET" in client.options("/v1/cases/case_1").headers["Allow"]
