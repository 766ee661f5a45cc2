"""Velocity windows against a real Redis: exact counts, one round trip, counted once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
import redis

from riskctl.events import parse_event
from riskctl.pseudonym import Pseudonymizer
from riskctl.velocity import Velocity
from tests import factories

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


@pytest.fixture
def velocity(redis_client: redis.Redis) -> Velocity:
    v = Velocity(redis_client, Pseudonymizer(b"test-key-0123456789abcdef"), ("10m", "1h", "24h", "30d"))
    v.load_script()
    return v


def observe(v: Velocity, event: dict) -> dict:
    result = v.observe(parse_event(orjson.dumps(event)))
    assert result.available
    return result.features


def test_counts_slide_with_the_window_edges_inclusive(velocity):
    for minute in (0, 5, 30, 59):
        f = observe(velocity, factories.order(buyer_id="b", shop_id="s", occurred_at=at(minute)))
    assert f["velocity.buyer_shop.orders_10m"] == 1  # 59 alone (49 is outside)
    assert f["velocity.buyer_shop.orders_1h"] == 4
    f = observe(velocity, factories.order(buyer_id="b", shop_id="s", occurred_at=at(65)))
    assert f["velocity.buyer_shop.orders_1h"] == 4  # minute 0 fell out, 5 is exactly on the edge
    assert f["velocity.buyer_shop.orders_24h"] == 5


def test_distinct_counts_members_not_events(velocity):
    for i, buyer in enumerate(["a", "b", "a", "c", "a"]):
        f = observe(velocity, factories.order(buyer_id=buyer, device_id="shared-phone", occurred_at=at(i)))
    assert f["velocity.device.buyers_1h"] == 3
    assert f["velocity.device.orders_1h"] == 5


def test_sums_are_exact_per_window(velocity):
    observe(velocity, factories.order(buyer_id="s1", amount=10.0, occurred_at=at(0)))
    observe(velocity, factories.order(buyer_id="s1", amount=2.5, occurred_at=at(50)))
    f = observe(velocity, factories.order(buyer_id="s1", amount=1.25, occurred_at=at(55)))
    assert f["velocity.buyer.amount_10m"] == pytest.approx(3.75)
    assert f["velocity.buyer.amount_1h"] == pytest.approx(13.75)


def test_a_retried_event_counts_once_in_every_window(velocity):
    event = factories.order(buyer_id="r", shop_id="r-shop", occurred_at=at(0))
    first = observe(velocity, event)
    again = observe(velocity, event)
    assert first == again
    assert all(v in (0, 1) or isinstance(v, float) for v in again.values())


def test_a_redis_py_timeout_retry_counts_once(velocity, redis_client, monkeypatch):
    """The script ran on the server but the reply was lost; redis-py retries it."""
    event = parse_event(orjson.dumps(factories.order(buyer_id="t", shop_id="t-shop", occurred_at=at(0))))
    script = velocity._script
    calls = {"n": 0}
    original = script.__call__

    def lossy(*args, **kwargs):
        calls["n"] += 1
        result = original(*args, **kwargs)
        if calls["n"] == 1:
            raise redis.TimeoutError("reply lost after the server ran the script")
        return result

    monkeypatch.setattr(velocity, "_script", lossy)
    assert velocity.observe(event).available is False  # the check would answer degraded...
    monkeypatch.setattr(velocity, "_script", script)
    retried = velocity.observe(event)  # ...and the client retries the same event_id
    assert retried.fresh is False
    assert retried.features["velocity.buyer_shop.orders_24h"] == 1


def test_exactly_one_round_trip_per_check(velocity, monkeypatch):
    from redis.connection import AbstractConnection

    sent: list[bytes] = []
    original = AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command if isinstance(command, bytes) else b"".join(command))
        return original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    for i in range(10):
        observe(velocity, factories.coupon(occurred_at=at(i)))
    assert len(sent) == 10
    assert all(b"EVALSHA" in cmd for cmd in sent)


def test_keys_and_members_are_keyed_hashes(velocity, redis_client):
    observe(
        velocity,
        factories.coupon(
            account_id="acct-RAW", device_id="device-RAW-1", ip="192.0.2.77", referrer_id="ref-RAW"
        ),
    )
    blob = b" ".join(redis_client.keys("*"))
    for key in redis_client.keys("rk:v:*"):
        if redis_client.type(key) == b"zset":
            blob += b" ".join(redis_client.zrange(key, 0, -1))
    for raw in (b"acct-RAW", b"device-RAW-1", b"192.0.2.77", b"ref-RAW", b"192.0.2.0"):
        assert raw not in blob


def test_absent_entities_read_zero_and_store_nothing(velocity):
    f = observe(velocity, factories.coupon(referrer_id=None, occurred_at=at(0)))
    assert f["velocity.referrer.invitees_30d"] == 0


def test_keys_expire(velocity, redis_client):
    observe(velocity, factories.order(occurred_at=at(0)))
    ttls = [redis_client.pttl(k) for k in redis_client.keys("rk:v:order:*")]
    assert ttls and all(0 < t <= (30 * 86400 + 60) * 1000 for t in ttls)


@pytest.mark.parametrize("make", [factories.order, factories.review, factories.coupon, factories.listing])
def test_features_follow_the_schema_in_name_order_and_type(velocity, make):
    from riskctl.features import FeatureType

    event = parse_event(orjson.dumps(make(occurred_at=at(0))))
    kind = event.kind
    specs = [s for s in velocity.schema() if kind in s.kinds]
    f = velocity.observe(event).features
    assert list(f) == [s.name for s in specs]
    for spec in specs:
        expected = float if spec.type == FeatureType.FLOAT else int
        assert type(f[spec.name]) is expected, spec.name
    assert list(velocity.unavailable(kind)) == list(f)
    assert all(v is None for v in velocity.unavailable(kind).values())


def test_filters_and_absent_entities_apply_per_metric(velocity):
    for minute, rating in enumerate((1, 5, 1, 3)):
        f = observe(
            velocity, factories.review(shop_id="rs", product_id="rp", rating=rating, occurred_at=at(minute))
        )
    assert f["velocity.shop.reviews_1h"] == 4
    assert f["velocity.shop.one_star_1h"] == 2
    assert f["velocity.product.five_star_1h"] == 1
    # a redemption without card or referrer: their metrics read zero, the others count
    for minute in range(3):
        f = observe(
            velocity,
            factories.coupon(
                account_id="acct-abs",
                device_id="dev-abs",
                referrer_id=None,
                payment_fingerprint=None,
                discount_amount=1.1,
                occurred_at=at(10 + minute),
            ),
        )
    assert f["velocity.payment.accounts_1h"] == 0
    assert f["velocity.referrer.invitees_1h"] == 0
    assert f["velocity.device.redemptions_1h"] == 3
    assert f["velocity.account.discount_1h"] == round(1.1 * 3, 6)


def test_a_rate_limited_check_reads_nothing(velocity):
    from riskctl.ratelimit import Limit

    limit = Limit(key_id=987, requests=1, window_s=60)
    event = parse_event(orjson.dumps(factories.order(occurred_at=at(0))))
    assert velocity.observe(event, limit=limit).limited_ms is None
    refused = velocity.observe(parse_event(orjson.dumps(factories.order(occurred_at=at(1)))), limit=limit)
    assert refused.available and refused.features == {} and 0 < refused.limited_ms <= 60_000
