"""Reputation: Beta math and decay, the history that explains a score, appeals that restore
it, the API, and scores reaching rules inside the check's one Redis round trip."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from riskctl import casework
from riskctl.models import Case, Decision
from riskctl.reputation import Beta, ReputationConfig, Update, decay, decode, encode, redis_key
from tests import factories
from tests.conftest import make_key

T0 = datetime(2026, 11, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def store_of(runtime: Any) -> Any:
    return runtime.extras["reputation"]


def bad(store: Any, t: str, raw: str, ref: str, times: int = 1) -> list[Update]:
    key = store.pseudo.token(t, raw)
    return [store.weighted(t, key, "case_confirmed_abuse", f"{ref}-{i}") for i in range(times)]


# -- the math --------------------------------------------------------------------------------
def test_beta_posterior_mean_and_decay_by_half_lives():
    cfg = ReputationConfig(half_life_days=10, prior_alpha=1, prior_beta=1)
    b = Beta(0, 0, T0).add(0, 3, T0, cfg.half_life_s)
    assert b.score(cfg) == pytest.approx(1 / 5)
    later = b.decayed(T0 + 10 * DAY, cfg.half_life_s)
    assert later.beta == pytest.approx(1.5)
    assert later.score(cfg) == pytest.approx(1 / 3.5)
    # two half-lives: a quarter left; the score drifts back toward the prior mean
    assert b.decayed(T0 + 20 * DAY, cfg.half_life_s).beta == pytest.approx(0.75)
    assert b.decayed(T0 + 1000 * DAY, cfg.half_life_s).score(cfg) == pytest.approx(0.5, abs=1e-9)
    # good evidence moves it the other way
    g = Beta(0, 0, T0).add(4, 0, T0, cfg.half_life_s)
    assert g.score(cfg) == pytest.approx(5 / 6)
    assert decay(0, 1) == 1.0 and decay(-5, 1) == 1.0


def test_adding_at_different_times_decays_the_old_evidence_first():
    hl = 86400.0
    b = Beta(0, 0, T0).add(0, 2, T0, hl).add(1, 0, T0 + DAY, hl)
    assert (b.alpha, b.beta) == (pytest.approx(1.0), pytest.approx(1.0))
    assert decode(encode(b)) == Beta(b.alpha, b.beta, b.at.replace(microsecond=0))
    assert decode(b"garbage") is None and decode(None) is None


# -- the store ------------------------------------------------------------------------------
def test_outcomes_move_the_score_the_right_way_and_it_decays(runtime):
    store = store_of(runtime)
    hl_days = store.config.half_life_days
    store.apply(bad(store, "buyer", "b-bad", "case:x"), actor="t", now=T0)
    good_key = store.pseudo.token("buyer", "b-good")
    store.apply([store.weighted("buyer", good_key, "case_false_positive", "case:y")], actor="t", now=T0)
    worse = store.explain("buyer", "b-bad", now=T0)
    better = store.explain("buyer", "b-good", now=T0)
    unknown = store.explain("buyer", "b-nobody", now=T0)
    assert worse["score"] < unknown["score"] == 0.5 < better["score"]
    assert worse["beta"] == pytest.approx(1 + 3) and worse["n"] == pytest.approx(3)
    aged = store.explain("buyer", "b-bad", now=T0 + hl_days * DAY)
    assert aged["beta"] == pytest.approx(1 + 1.5)
    assert worse["score"] < aged["score"] < 0.5


def test_the_history_explains_the_score(runtime):
    store = store_of(runtime)
    key = store.pseudo.token("shop", "s-1")
    steps = [
        (T0, "decision_block"),
        (T0 + 3 * DAY, "case_confirmed_abuse"),
        (T0 + 9 * DAY, "complaint_rejected_seller"),
        (T0 + 40 * DAY, "decision_allow"),
    ]
    for i, (at, reason) in enumerate(steps):
        store.apply([store.weighted("shop", key, reason, f"ref:{i}")], actor="t", now=at)
    now = T0 + 50 * DAY
    view = store.explain("shop", "s-1", now=now)
    assert [h["reason"] for h in view["history"]] == [r for _, r in reversed(steps)]
    alpha = view["prior"]["alpha"] + sum(h["delta_alpha"] * h["weight_now"] for h in view["history"])
    beta = view["prior"]["beta"] + sum(h["delta_beta"] * h["weight_now"] for h in view["history"])
    assert view["alpha"] == pytest.approx(alpha, abs=1e-5)
    assert view["beta"] == pytest.approx(beta, abs=1e-5)
    assert view["score"] == pytest.approx(alpha / (alpha + beta), abs=1e-5)
    # the stored key is the keyed-hash token, never the raw id
    assert runtime.redis.hget(redis_key("shop"), key) is not None
    assert b"s-1" not in b"".join(runtime.redis.hkeys(redis_key("shop")))


def _flag_buyer(client: Any, headers: dict[str, str], buyer: str, shop: str = "shop-r") -> Any:
    """Three orders in an hour by one buyer at one shop (ORD-001): a case in the orders queue."""
    for i in range(3):
        ev = factories.order(buyer_id=buyer, shop_id=shop, occurred_at=f"2026-11-20T10:0{i}:00Z")
        assert client.post("/v1/checks", json=ev, headers=headers).status_code == 200
    return client.application.extensions["riskctl"].sessions


def test_resolved_case_lowers_and_an_upheld_appeal_restores(client, runtime, pipeline_headers):
    store = store_of(runtime)
    sessions = _flag_buyer(client, pipeline_headers, "buyer-appeal")
    with runtime.engine.connect() as conn:
        case_id = conn.execute(select(Case.id).where(Case.subject_id == "buyer-appeal")).scalar_one()
    t1, t2, t3 = T0 + 100 * DAY, T0 + 130 * DAY, T0 + 150 * DAY
    store.ingest(now=t1)
    before = store.explain("buyer", "buyer-appeal", now=t1)
    assert {h["reason"] for h in before["history"]} >= {"decision_allow", "decision_review"}

    casework.claim(sessions, case_id, "mod-a")
    casework.resolve(sessions, case_id, "mod-a", "confirmed_abuse", "brushing")
    counts = store.ingest(now=t1)
    assert counts["cases"] == 1 and counts["decisions"] == 0  # decisions were folded in once
    hit = store.explain("buyer", "buyer-appeal", now=t1)
    assert hit["score"] < before["score"]
    device = store.explain("device", "device-aaa-111", now=t1)
    assert any(h["reason"] == "case_device_confirmed_abuse" for h in device["history"])

    casework.appeal(sessions, case_id, "buyer-appeal", "those were gifts for my family")
    casework.decide_appeal(sessions, case_id, "senior-b", True, "gifts, receipts attached")
    assert store.ingest(now=t2)["appeals"] == 1
    assert store.ingest(now=t2) == {"decisions": 0, "cases": 0, "appeals": 0}  # idempotent
    restored = store.explain("buyer", "buyer-appeal", now=t3)
    # the case and its reversal cancel: what is left is exactly the decisions' evidence
    hist = restored["history"]
    assert any(h["reason"] == "appeal_reversal" and h["reverses"] for h in hist)
    decisions_only = [h for h in hist if h["ref"].startswith("decision:")]
    beta = restored["prior"]["beta"] + sum(h["delta_beta"] * h["weight_now"] for h in decisions_only)
    alpha = restored["prior"]["alpha"] + sum(h["delta_alpha"] * h["weight_now"] for h in decisions_only)
    assert restored["beta"] == pytest.approx(beta, abs=1e-5)
    assert restored["alpha"] == pytest.approx(alpha, abs=1e-5)
    assert restored["score"] > hit["score"]


# -- the API --------------------------------------------------------------------------------
def test_api_returns_score_and_history_to_staff_only(app, client, runtime):
    store = store_of(runtime)
    store.apply(bad(store, "buyer", "buyer-api", "case:api", times=2), actor="t")
    analyst = {"Authorization": f"Bearer {make_key(app, 'analyst')}"}
    r = client.get("/v1/reputation/buyer/buyer-api", headers=analyst)
    assert r.status_code == 200
    body = r.get_json()
    assert body["score"] == pytest.approx(1 / 8, abs=1e-3) and len(body["history"]) == 2
    assert client.get("/v1/reputation/buyer/buyer-api").status_code == 401
    pipeline = {"Authorization": f"Bearer {make_key(app, 'pipeline')}"}
    assert client.get("/v1/reputation/buyer/buyer-api", headers=pipeline).status_code == 403
    r = client.get("/v1/reputation/planet/x", headers=analyst)
    assert r.status_code == 404 and r.mimetype == "application/problem+json"
    moderator = {"Authorization": f"Bearer {make_key(app, 'moderator')}"}
    assert client.get("/v1/reputation/device/dev-1", headers=moderator).get_json()["n"] == 0


# -- features reach rules in the one round trip -------------------------------------------------
def _codes(body: bytes) -> set[str]:
    return {r["code"] for r in orjson.loads(body)["reasons"]}


def test_reputation_features_reach_rules_in_one_round_trip(client, runtime, pipeline_headers):
    from riskctl.instruments import REDIS_ROUNDTRIPS

    store = store_of(runtime)
    store.apply(bad(store, "buyer", "buyer-known-bad", "case:r", times=3), actor="t")
    client.post("/v1/checks", json=factories.order(buyer_id="warm-up"), headers=pipeline_headers)
    before = REDIS_ROUNDTRIPS._value.get()
    bad_order = factories.order(buyer_id="buyer-known-bad", shop_id="shop-q", amount=300.0)
    good_order = factories.order(buyer_id="buyer-clean", shop_id="shop-q", amount=300.0)
    r_bad = client.post("/v1/checks", json=bad_order, headers=pipeline_headers)
    r_good = client.post("/v1/checks", json=good_order, headers=pipeline_headers)
    assert REDIS_ROUNDTRIPS._value.get() - before == 2
    assert "ORD-016" in _codes(r_bad.data)
    assert "ORD-016" not in _codes(r_good.data)
    with runtime.engine.connect() as conn:
        feats = conn.execute(
            select(Decision.features).where(Decision.id == r_bad.get_json()["decision_id"])
        ).scalar_one()
    assert feats["reputation.buyer"] == pytest.approx(1 / 11, abs=1e-4)
    assert feats["reputation.buyer_n"] == pytest.approx(9, abs=1e-4)
    assert feats["reputation.shop_n"] == 0


def test_a_bad_record_raises_queue_priority(client, runtime, pipeline_headers):
    store = store_of(runtime)
    store.apply(bad(store, "buyer", "buyer-p-bad", "case:p", times=3), actor="t")
    _flag_buyer(client, pipeline_headers, "buyer-p-bad", "shop-p1")
    _flag_buyer(client, pipeline_headers, "buyer-p-clean", "shop-p2")
    with runtime.engine.connect() as conn:
        rows = {r.subject_id: r for r in conn.execute(select(Case.subject_id, Case.priority, Case.max_score))}
    assert rows["buyer-p-bad"].max_score == rows["buyer-p-clean"].max_score
    assert rows["buyer-p-bad"].priority > rows["buyer-p-clean"].priority


def test_features_decay_to_the_event_time(runtime):
    store = store_of(runtime)
    store.apply(bad(store, "device", "dev-x", "case:d"), actor="t", now=T0)
    event = factories.order(device_id="dev-x")
    from riskctl.events import parse_event

    parsed = parse_event(orjson.dumps(event))
    reads = store.reads(parsed)
    raw = [runtime.redis.hget(key, fld) for _, key, fld in reads]
    f = store.features(reads, raw, T0 + store.config.half_life_days * DAY)
    assert f["reputation.device_n"] == pytest.approx(1.5)
    assert f["reputation.buyer_n"] == 0 and f["reputation.buyer"] == 0.5
    assert store.features(reads, None, T0)["reputation.device"] is None
    assert math.isclose(store.sync(), 1)
