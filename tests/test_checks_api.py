"""POST /v1/checks and GET /v1/decisions: the promises of the foundation issue."""

from __future__ import annotations

import json
import threading
from typing import Any

import orjson
import pytest
import redis
from sqlalchemy import func, select, text

from riskctl.models import Decision, DecisionHit, EventRecord
from tests import factories
from tests.conftest import make_key


def _count(runtime: Any, model: Any) -> int:
    with runtime.sessions() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def _assert_nothing_stored(runtime: Any, redis_client: redis.Redis) -> None:
    assert _count(runtime, EventRecord) == 0
    assert _count(runtime, Decision) == 0
    # velocity keys would exist had anything been counted (the script itself may be cached)
    assert redis_client.keys("rk:v:*") == []


@pytest.mark.parametrize("kind", list(factories.FACTORIES))
def test_each_kind_returns_a_stored_decision(client, runtime, pipeline_headers, kind):
    event = factories.FACTORIES[kind]()
    r = client.post("/v1/checks", json=event, headers=pipeline_headers)
    assert r.status_code == 200, r.data
    body = r.get_json()
    assert set(body) == {
        "decision_id",
        "event_id",
        "kind",
        "outcome",
        "score",
        "reasons",
        "degraded",
        "rulepack_version",
    }
    assert body["event_id"] == event["event_id"]
    assert body["kind"] == kind
    assert body["outcome"] in {"allow", "review", "block"}
    assert 0 <= body["score"] <= 100
    assert body["degraded"] is False
    stored = client.get(f"/v1/decisions/{body['decision_id']}", headers=pipeline_headers)
    assert stored.status_code == 200
    detail = stored.get_json()
    assert detail["outcome"] == body["outcome"]
    assert detail["signals"], "every decision keeps its signals"
    assert any(name.startswith("velocity.") for name in detail["features"])


def test_same_request_again_returns_identical_bytes_and_counts_once(client, runtime, pipeline_headers):
    event = factories.order(buyer_id="b-idem", shop_id="s-idem")
    first = client.post("/v1/checks", json=event, headers=pipeline_headers)
    again = client.post(
        "/v1/checks",
        data=json.dumps(event, indent=2),
        headers=pipeline_headers,
        content_type="application/json",
    )
    assert first.status_code == again.status_code == 200
    assert first.data == again.data
    assert _count(runtime, Decision) == 1
    # a second, different order of the same buyer at the same shop sees exactly 2
    nxt = client.post(
        "/v1/checks", json=factories.order(buyer_id="b-idem", shop_id="s-idem"), headers=pipeline_headers
    )
    detail = client.get(f"/v1/decisions/{nxt.get_json()['decision_id']}", headers=pipeline_headers).get_json()
    assert detail["features"]["velocity.buyer_shop.orders_1h"] == 2


def test_concurrent_duplicates_store_one_decision(app, runtime, pipeline_headers):
    event = factories.order(buyer_id="b-race", shop_id="s-race")
    payload = orjson.dumps(event)
    bodies: list[bytes] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def send() -> None:
        try:
            c = app.test_client()
            barrier.wait()
            r = c.post("/v1/checks", data=payload, headers=pipeline_headers, content_type="application/json")
            assert r.status_code == 200, r.data
            bodies.append(r.data)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(bodies)) == 1
    assert _count(runtime, Decision) == 1
    nxt = app.test_client().post(
        "/v1/checks", json=factories.order(buyer_id="b-race", shop_id="s-race"), headers=pipeline_headers
    )
    assert nxt.status_code == 200
    detail = (
        app.test_client()
        .get(f"/v1/decisions/{nxt.get_json()['decision_id']}", headers=pipeline_headers)
        .get_json()
    )
    assert detail["features"]["velocity.buyer_shop.orders_1h"] == 2


def test_same_event_id_different_body_is_409_and_changes_nothing(client, runtime, pipeline_headers):
    event = factories.order()
    first = client.post("/v1/checks", json=event, headers=pipeline_headers)
    r = client.post("/v1/checks", json={**event, "amount": 999.0}, headers=pipeline_headers)
    assert r.status_code == 409
    assert r.mimetype == "application/problem+json"
    assert r.get_json()["decision_id"] == first.get_json()["decision_id"]
    assert _count(runtime, Decision) == 1


BAD_BODIES = [
    pytest.param(b'{"kind": "order", ', 400, "malformed-json", id="malformed-json"),
    pytest.param(b"[1, 2]", 422, "validation-failed", id="not-an-object"),
    pytest.param(
        orjson.dumps({k: v for k, v in factories.order().items() if k != "buyer_id"}),
        422,
        "validation-failed",
        id="missing-field",
    ),
    pytest.param(
        orjson.dumps({**factories.order(), "is_admin": True}), 422, "validation-failed", id="unknown-field"
    ),
    pytest.param(
        orjson.dumps({**factories.order(), "amount": "25.0"}), 422, "validation-failed", id="wrong-type"
    ),
    pytest.param(
        orjson.dumps({**factories.review(), "rating": 6}), 422, "validation-failed", id="out-of-range"
    ),
    pytest.param(
        orjson.dumps({**factories.order(), "kind": "refund"}), 422, "validation-failed", id="unknown-kind"
    ),
    pytest.param(
        orjson.dumps({**factories.order(), "occurred_at": "2026-11-20T10:00:00"}),
        422,
        "validation-failed",
        id="naive-time",
    ),
    pytest.param(
        orjson.dumps({**factories.order(), "ip": "not-an-ip"}), 422, "validation-failed", id="bad-ip"
    ),
    pytest.param(
        orjson.dumps({**factories.order(), "padding": "x" * 1_048_576}), 413, "payload-too-large", id="1MB"
    ),
]


@pytest.mark.parametrize(("raw", "status", "slug"), BAD_BODIES)
def test_bad_input_is_problem_json_and_stores_nothing(
    client, runtime, redis_client, pipeline_headers, raw, status, slug
):
    r = client.post("/v1/checks", data=raw, headers=pipeline_headers, content_type="application/json")
    assert r.status_code == status, r.data
    assert r.mimetype == "application/problem+json"
    problem = r.get_json()
    assert problem["type"] == f"urn:riskctl:problem:{slug}"
    assert problem["status"] == status
    assert problem["detail"]
    _assert_nothing_stored(runtime, redis_client)


def test_validation_problem_names_each_bad_field(client, pipeline_headers):
    event = {**factories.order(), "amount": "x", "surprise": 1}
    del event["buyer_id"]
    problem = client.post("/v1/checks", json=event, headers=pipeline_headers).get_json()
    fields = {e["field"]: e["message"] for e in problem["errors"]}
    assert fields["amount"].startswith("Input should be a valid number")
    assert fields["surprise"] == "unknown field"
    assert fields["buyer_id"] == "Field required"
    assert "buyer_id" in problem["detail"]


def test_nested_field_is_named_with_its_path(client, pipeline_headers):
    event = factories.order(items=[{"product_id": "p", "quantity": 0, "unit_price": 1.0}])
    problem = client.post("/v1/checks", json=event, headers=pipeline_headers).get_json()
    assert problem["errors"][0]["field"] == "items.0.quantity"


def test_wrong_content_type_is_415(client, runtime, redis_client, pipeline_headers):
    r = client.post(
        "/v1/checks",
        data=orjson.dumps(factories.order()),
        headers=pipeline_headers,
        content_type="text/plain",
    )
    assert r.status_code == 415
    assert r.mimetype == "application/problem+json"
    _assert_nothing_stored(runtime, redis_client)


@pytest.mark.parametrize(
    "header", [None, "Bearer nope", "Bearer rk_000000000000_wrong", "Basic abc", "Bearer "]
)
def test_missing_or_wrong_key_is_401(client, runtime, redis_client, header):
    headers = {"Authorization": header} if header is not None else {}
    r = client.post("/v1/checks", json=factories.order(), headers=headers)
    assert r.status_code == 401
    assert r.mimetype == "application/problem+json"
    _assert_nothing_stored(runtime, redis_client)


def test_revoked_key_is_401(app, client):
    from riskctl.apikeys import revoke_key

    key = make_key(app, "pipeline")
    revoke_key(app.extensions["riskctl"].sessions, key.split("_")[1])
    app.extensions["riskctl"].keys._cache.clear()
    r = client.post("/v1/checks", json=factories.order(), headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 401


def test_key_without_pipeline_scope_is_403(app, client):
    key = make_key(app, "metrics")
    r = client.post("/v1/checks", json=factories.order(), headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 403
    assert r.mimetype == "application/problem+json"


def test_unknown_route_and_method_are_problems(client, pipeline_headers):
    r = client.get("/v1/nothing-here", headers=pipeline_headers)
    assert (r.status_code, r.mimetype) == (404, "application/problem+json")
    r = client.put("/v1/checks", json={}, headers=pipeline_headers)
    assert (r.status_code, r.mimetype) == (405, "application/problem+json")
    assert "POST" in r.headers["Allow"]


def test_unknown_decision_is_404(client, pipeline_headers):
    r = client.get("/v1/decisions/dec_NOPE", headers=pipeline_headers)
    assert (r.status_code, r.mimetype) == (404, "application/problem+json")


def test_server_error_is_problem_json_and_nothing_half_stored(
    app, client, runtime, pipeline_headers, monkeypatch
):
    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(runtime.checks, "_persist", explode)
    r = client.post("/v1/checks", json=factories.order(), headers=pipeline_headers)
    assert r.status_code == 500
    assert r.mimetype == "application/problem+json"
    assert "disk on fire" not in r.get_data(as_text=True)
    assert _count(runtime, Decision) == 0


def test_no_raw_identifiers_in_database_or_redis(client, runtime, redis_client, pipeline_headers):
    secrets_ = {"device-zzz-999", "203.0.113.201", "cardfp-SECRET01", "addrhash-SECRET02"}
    event = factories.order(
        device_id="device-zzz-999",
        ip="203.0.113.201",
        payment={"method": "card", "fingerprint": "cardfp-SECRET01"},
        shipping_address_hash="addrhash-SECRET02",
    )
    assert client.post("/v1/checks", json=event, headers=pipeline_headers).status_code == 200
    with runtime.engine.connect() as conn:
        dump = "\n".join(
            str(row)
            for table in ("events", "decisions", "decision_hits", "api_keys")
            for row in conn.execute(text(f"SELECT * FROM {table}"))
        )
    redis_dump = b"\n".join(
        k + b" " + b" ".join(redis_client.zrange(k, 0, -1) if redis_client.type(k) == b"zset" else [])
        for k in redis_client.keys("*")
    ).decode(errors="replace")
    for secret in secrets_:
        assert secret not in dump
        assert secret not in redis_dump
    assert "203.0.113.0" not in redis_dump  # the /24 is keyed too


def test_hits_are_recorded_as_rows(client, runtime, pipeline_headers):
    for _ in range(3):
        r = client.post(
            "/v1/checks", json=factories.order(buyer_id="b-hits", shop_id="s-hits"), headers=pipeline_headers
        )
    assert r.get_json()["outcome"] in {"review", "block"}
    assert r.get_json()["reasons"]
    with runtime.sessions() as s:
        codes = s.scalars(select(DecisionHit.code)).all()
    assert r.get_json()["reasons"][0]["code"] in codes


def test_request_id_is_echoed_or_made(client):
    assert (
        client.get("/healthz", headers={"X-Request-ID": "abc12345-req"}).headers["X-Request-ID"]
        == "abc12345-req"
    )
    made = client.get("/healthz", headers={"X-Request-ID": "<script>"}).headers["X-Request-ID"]
    assert made != "<script>" and len(made) == 32
