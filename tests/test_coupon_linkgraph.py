"""The coupon link graph kept by the velocity script in Redis, against the in-memory reference."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import redis

from detectors.linkgraph import LinkGraph, Redemption, build
from riskctl.events import CouponRedemptionEvent, parse_event
from riskctl.pseudonym import Pseudonymizer
from riskctl.velocity import LINK_FEATURES, Velocity
from tests import factories

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
WINDOWS = ("10m", "1h", "24h", "30d")


@pytest.fixture
def velocity(redis_client: redis.Redis) -> Velocity:
    v = Velocity(redis_client, Pseudonymizer(b"test-key-0123456789abcdef"), WINDOWS)
    v.load_script()
    return v


def redemption_of(event: CouponRedemptionEvent) -> Redemption:
    """The reference's view of a live event (raw ids: the reference never meets Redis)."""
    return Redemption(
        account=event.account_id,
        campaign=event.campaign_id,
        at_ms=int(event.occurred_at.timestamp() * 1000),
        links={
            "device": event.device_id,
            "payment": event.payment_fingerprint,
            "address": event.shipping_address_hash,
            "ip24": event.ip_prefix,
        },
        referrer=event.referrer_id,
        device=event.device_id,
    )


def link_part(features: dict) -> dict:
    return {k: features[k] for k in LINK_FEATURES}


def random_events(rng: random.Random, n: int) -> list[dict]:
    accounts = [f"acct-{i}" for i in range(14)]
    events = []
    t = T0
    for _ in range(n):
        t += timedelta(minutes=rng.choice([1, 5, 30, 240, 900]))
        account = rng.choice(accounts)
        events.append(
            factories.coupon(
                occurred_at=t.isoformat(),
                account_id=account,
                account_created_at=(t - timedelta(hours=rng.choice([1, 30]))).isoformat(),
                campaign_id=rng.choice(["welcome", "spring", "refer"]),
                device_id=f"dev-{rng.randrange(9)}",
                ip=f"10.{rng.randrange(6)}.0.{rng.randrange(1, 250)}",
                payment_fingerprint=rng.choice([None, *(f"cardfp-{i:08d}" for i in range(7))]),
                shipping_address_hash=rng.choice([None, None, *(f"addrhash-{i:07d}" for i in range(6))]),
                referrer_id=rng.choice([None, None, *accounts]),
            )
        )
    return events


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_incremental_cluster_features_equal_the_offline_reference(velocity, seed):
    rng = random.Random(seed)
    events = random_events(rng, 70)
    reference = LinkGraph()
    sizes = set()
    for raw in events:
        event = parse_event(orjson.dumps(raw))
        got = velocity.observe(event)
        assert got.available and got.fresh
        expected = reference.observe(redemption_of(event))
        assert link_part(got.features) == expected, raw["event_id"]
        sizes.add(expected["coupon.cluster.accounts"])
    # the sequence exercised merges (clusters of many sizes), not one trivial case
    assert len(sizes) >= 4
    # and the final partition equals the one built offline in one pass
    offline = build(redemption_of(parse_event(orjson.dumps(e))) for e in events)
    assert sorted(map(tuple, offline.components().values())) == sorted(
        map(tuple, reference.components().values())
    )


def snapshot(client: redis.Redis) -> dict[bytes, object]:
    out: dict[bytes, object] = {}
    for key in client.keys("rk:v:*"):
        kind = client.type(key)
        if kind == b"hash":
            out[key] = client.hgetall(key)
        elif kind == b"zset":
            out[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == b"set":
            out[key] = client.smembers(key)
        else:
            out[key] = client.get(key)
    return out


def test_a_retried_event_changes_nothing(velocity, redis_client):
    rng = random.Random(9)
    events = random_events(rng, 20)
    reference = LinkGraph()
    for raw in events:
        event = parse_event(orjson.dumps(raw))
        first = velocity.observe(event)
        reference.add(redemption_of(event))
        before = snapshot(redis_client)
        again = velocity.observe(event)  # same event_id: read only
        assert again.fresh is False
        assert again.features == first.features
        assert snapshot(redis_client) == before
        assert link_part(again.features) == reference.features(redemption_of(event))


def test_link_keys_hold_no_raw_identifiers(velocity, redis_client):
    velocity.observe(
        parse_event(
            orjson.dumps(
                factories.coupon(
                    account_id="acct-RAW",
                    device_id="device-RAW-1",
                    referrer_id="ref-RAW",
                    campaign_id="camp-RAW",
                )
            )
        )
    )
    blob = b" ".join(redis_client.keys("rk:v:*"))
    for key, value in snapshot(redis_client).items():
        blob += repr(value).encode()
    for raw in (b"acct-RAW", b"device-RAW-1", b"ref-RAW", b"camp-RAW", b"192.0.2"):
        assert raw not in blob


def test_referral_depth_counts_hops_and_the_day_window(velocity):
    # a → b → c → d: each invited by the previous; c joins two days after b
    chain = [("b", "a", 0), ("c", "b", 48 * 60), ("d", "c", 48 * 60 + 30)]
    features = {}
    for account, referrer, minute in chain:
        t = T0 + timedelta(minutes=minute)
        event = factories.coupon(
            account_id=account, referrer_id=referrer, occurred_at=t.isoformat(), device_id=f"dev-{account}"
        )
        features[account] = velocity.observe(parse_event(orjson.dumps(event))).features
    assert features["b"]["coupon.referral.depth"] == 1
    assert features["d"]["coupon.referral.depth"] == 3
    assert features["d"]["coupon.referral.depth_24h"] == 2  # the b → a edge is two days old


def test_a_referral_cycle_ends(velocity):
    for account, referrer in (("x", "y"), ("y", "x")):
        event = factories.coupon(account_id=account, referrer_id=referrer)
        f = velocity.observe(parse_event(orjson.dumps(event))).features
    assert f["coupon.referral.depth"] == 8  # MAX_DEPTH hops round the cycle, then stop


def test_new_account_velocity_per_campaign(velocity):
    for i, age_h in enumerate([1, 2, 48, 5]):
        t = T0 + timedelta(minutes=i)
        event = factories.coupon(
            account_id=f"n{i}",
            campaign_id="fresh-camp",
            occurred_at=t.isoformat(),
            account_created_at=(t - timedelta(hours=age_h)).isoformat(),
        )
        f = velocity.observe(parse_event(orjson.dumps(event))).features
    assert f["velocity.campaign.new_accounts_1h"] == 3  # the 48-hour-old account is not new
    assert f["velocity.campaign.redemptions_1h"] == 4


def test_without_the_link_graph_no_link_features_and_no_link_keys(redis_client):
    v = Velocity(redis_client, Pseudonymizer(b"test-key-0123456789abcdef"), WINDOWS, link_graph=False)
    f = v.observe(parse_event(orjson.dumps(factories.coupon()))).features
    assert not set(LINK_FEATURES) & set(f)
    assert not redis_client.keys("rk:v:{lg}:*")
    assert not {s.name for s in v.schema()} & set(LINK_FEATURES)


def test_orders_do_not_touch_the_link_graph(velocity, redis_client):
    f = velocity.observe(parse_event(orjson.dumps(factories.order()))).features
    assert not set(LINK_FEATURES) & set(f)
    assert not redis_client.keys("rk:v:{lg}:*")


def test_still_one_round_trip_per_coupon_check(velocity, monkeypatch):
    from redis.connection import AbstractConnection

    sent: list[bytes] = []
    original = AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command if isinstance(command, bytes) else b"".join(command))
        return original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    rng = random.Random(3)
    for raw in random_events(rng, 12):
        f = velocity.observe(parse_event(orjson.dumps(raw))).features
        assert f["coupon.cluster.accounts"] >= 1
    assert len(sent) == 12
    assert all(b"EVALSHA" in cmd for cmd in sent)


def test_unavailable_link_features_read_none():
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    down = redis.Redis(unix_socket_path="/nonexistent/h_coupon.sock", retry=Retry(NoBackoff(), 0))
    v = Velocity(down, Pseudonymizer(b"k" * 16), WINDOWS)
    try:
        result = v.observe(parse_event(orjson.dumps(factories.coupon())))
    finally:
        v.client.close()
    assert not result.available
    assert all(result.features[k] is None for k in LINK_FEATURES)


def test_every_link_graph_key_expires(velocity, redis_client):
    for raw in random_events(random.Random(4), 15):
        velocity.observe(parse_event(orjson.dumps(raw)))
    keys = redis_client.keys("rk:v:{lg}:*")
    assert {k.split(b":")[3] for k in keys} == {b"g", b"camp"}
    ttls = [redis_client.pttl(k) for k in keys]
    assert all(0 < t <= (31 * 86400) * 1000 for t in ttls)
