"""The marketplace simulator: deterministic, valid against the API's own models, truthful labels."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from datetime import timedelta

import orjson
import pytest

from fixtures.simulator import ABUSE_KINDS, TACTICS, Marketplace, load_brands
from riskctl.events import EVENT_MODELS, parse_event

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
SUBJECT = {
    "order": "buyer_id",
    "review": "reviewer_id",
    "coupon_redemption": "account_id",
    "listing": "shop_id",
}


@pytest.fixture(scope="module")
def market() -> Marketplace:
    return Marketplace(seed=11, size=3_000, days=6, warmup_days=2)


@pytest.fixture(scope="module")
def sims(market: Marketplace) -> list:
    return list(market.events())


def _digest(market: Marketplace) -> str:
    h = hashlib.sha256()
    for event in market.event_dicts():
        h.update(orjson.dumps(event, option=orjson.OPT_SORT_KEYS))
    return h.hexdigest()


def test_same_seed_gives_byte_identical_events(sims: list) -> None:
    again = Marketplace(seed=11, size=3_000, days=6, warmup_days=2)
    assert [orjson.dumps(s.event) for s in again.events()] == [orjson.dumps(s.event) for s in sims]
    assert [s.truth for s in again.events()] == [s.truth for s in sims]


def test_a_different_seed_gives_a_different_marketplace() -> None:
    a = Marketplace(seed=1, size=2_000, days=4, warmup_days=1)
    b = Marketplace(seed=2, size=2_000, days=4, warmup_days=1)
    assert _digest(a) != _digest(b)


def test_size_is_roughly_what_was_asked() -> None:
    n = sum(1 for _ in Marketplace(seed=3, size=5_000, days=5, warmup_days=1).events())
    assert 4_000 < n < 6_000


def test_every_event_validates_through_the_api_models(sims: list) -> None:
    kinds = Counter()
    for sim in sims:
        parsed = parse_event(orjson.dumps(sim.event))
        assert isinstance(parsed, EVENT_MODELS[sim.event["kind"]])
        assert RFC3339.match(sim.event["occurred_at"])
        assert parsed.occurred_at == sim.at
        kinds[sim.event["kind"]] += 1
    assert set(kinds) == set(EVENT_MODELS)
    assert len({s.event["event_id"] for s in sims}) == len(sims)


def test_events_come_in_time_order_and_some_carry_a_local_offset(sims: list) -> None:
    times = [s.at for s in sims]
    assert times == sorted(times)
    assert any(s.event["occurred_at"].endswith("+08:00") for s in sims)


def test_abuse_only_after_the_warm_up_and_every_tactic_is_there(market: Marketplace, sims: list) -> None:
    eval_from = market.start + timedelta(days=market.warmup_days)
    tactics = Counter(s.truth.tactic for s in sims if s.truth.is_abuse)
    assert set(tactics) == set(TACTICS)
    assert all(s.at >= eval_from for s in sims if s.truth.is_abuse)
    legit = Counter(s.truth.tactic for s in sims if not s.truth.is_abuse)
    for tag in ("flash_sale", "honest_negative", "authorised_brand"):
        assert legit[tag] > 0, tag


def test_labels_agree_with_the_events_and_the_entities(market: Marketplace, sims: list) -> None:
    campaign_ids = {c.id for c in market.campaigns}
    for sim in sims:
        kind = sim.event["kind"]
        subject = sim.event[SUBJECT[kind]]
        if sim.truth.is_abuse:
            assert ABUSE_KINDS[sim.truth.abuse] == kind
            assert sim.truth.campaign in campaign_ids
            assert sim.truth.abuse in market.entity_labels[subject], (subject, sim.truth)
        else:
            assert sim.truth.campaign is None
            assert subject not in market.entity_labels or sim.truth.tactic is None
    # legitimate traffic never acts as a campaign account
    legit_subjects = {s.event[SUBJECT[s.event["kind"]]] for s in sims if not s.truth.is_abuse}
    assert not legit_subjects & {e for e in market.entity_labels if not e.startswith("shop")}


def test_campaigns_look_like_their_tactic(sims: list) -> None:
    by = {t: [s.event for s in sims if s.truth.tactic == t] for t in TACTICS}
    brushing_orders = [e for e in by["brushing"] if e["kind"] == "order"]
    assert all(e["parcel_weight_grams"] < 50 and e["amount"] < 10 for e in brushing_orders)
    # per ring, its three devices carry most orders (now and then an emulator resets its id)
    rings = {s.truth.campaign for s in sims if s.truth.tactic == "brushing"}
    for ring in rings:
        orders = [s.event for s in sims if s.truth.campaign == ring and s.event["kind"] == "order"]
        devices = Counter(e["device_id"] for e in orders)
        assert sum(n for _d, n in devices.most_common(3)) >= 0.6 * len(orders)
        assert len({e["buyer_id"] for e in orders}) >= 6
    assert all(e["rating"] == 5 for e in by["review_farm"])
    assert sum("order_id" not in e for e in by["review_farm"]) >= 0.7 * len(by["review_farm"])
    assert all(e["rating"] == 1 for e in by["review_bombing"])
    farm = by["coupon_farm"]
    assert all(e["new_user_only"] and e.get("referrer_id") for e in farm)
    assert len({e["device_id"] for e in farm}) <= 5 < len({e["account_id"] for e in farm})
    brands = {b.name: b for b in load_brands()}
    for e in by["counterfeit"]:
        ref = max(b.reference_price for b in brands.values() if b.category == e["category"])
        assert e["price"] < 0.31 * ref


def test_authorised_sellers_come_from_the_brand_registry(sims: list) -> None:
    allowed = {shop for b in load_brands() for shop in b.authorised_shops}
    shops = {s.event["shop_id"] for s in sims if s.truth.tactic == "authorised_brand"}
    assert shops and shops <= allowed
