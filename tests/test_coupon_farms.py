"""Coupon farms and referral abuse through the API (link-graph rules) and the batch scan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
from click.testing import CliRunner
from sqlalchemy import select

from api.cli import main
from detectors.linkgraph import Redemption
from riskctl.coupon_scan import StoredRedemption, scan_redemptions
from riskctl.models import Case
from tests import factories

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def send(client, headers, event):
    r = client.post("/v1/checks", json=event, headers=headers)
    assert r.status_code == 200, r.data
    return r.get_json()


def codes(body):
    return {r["code"] for r in body["reasons"]}


def farm_events():
    """Eight accounts chained by hand-me-down phones and cards: no device or card is used by
    more than two of them, each is on its own network, so only the link graph sees one farm."""
    return [
        factories.coupon(
            account_id=f"farm-{i}",
            campaign_id="spring-sale",
            coupon_code="SPRING5",
            device_id=f"farm-dev-{(i + 1) // 2}",
            payment_fingerprint=f"cardfp-farm{i // 2:04d}",
            shipping_address_hash=f"addrhash-farm{i:03d}",
            ip=f"10.{i}.1.7",
            referrer_id=None,
            account_created_at=at(-60 * 24 * 3),
            occurred_at=at(i * 7),
        )
        for i in range(8)
    ]


def family_events():
    """Three households of three: each member has a phone and a card, the household shares
    its address and its home network; one coupon per account."""
    return [
        factories.coupon(
            account_id=f"fam-{h}-{m}",
            campaign_id="spring-sale",
            coupon_code="SPRING5",
            device_id=f"fam-dev-{h}-{m}",
            payment_fingerprint=f"cardfp-fam{h}{m:03d}",
            shipping_address_hash=f"addrhash-home{h:03d}",
            ip=f"172.16.{h}.{m + 2}",
            referrer_id=None,
            account_created_at=at(-60 * 24 * 400),
            occurred_at=at(100 + 3 * h + m),
        )
        for h in range(3)
        for m in range(3)
    ]


def ring_events():
    """One referrer's invitees all sign up on the same phone."""
    return [
        factories.coupon(
            account_id=f"inv-{i}",
            referrer_id="ring-boss",
            campaign_id="refer-a-friend",
            coupon_code="FRIEND10",
            device_id="ring-phone",
            payment_fingerprint=None,
            shipping_address_hash=None,
            ip=f"10.200.{i}.9",
            account_created_at=at(200 + i * 4 - 2),
            occurred_at=at(200 + i * 4),
        )
        for i in range(4)
    ]


def test_a_coupon_farm_is_flagged_once_five_linked_accounts_redeemed(client, pipeline_headers):
    bodies = [send(client, pipeline_headers, e) for e in farm_events()]
    assert [("CPN-013" in codes(b)) for b in bodies] == [False] * 4 + [True] * 4
    assert all(b["outcome"] in {"review", "block"} for b in bodies[4:])


def test_families_sharing_an_address_stay_quiet(client, pipeline_headers):
    for event in family_events():
        body = send(client, pipeline_headers, event)
        assert body["outcome"] == "allow", body
        assert not {"CPN-013", "CPN-014", "CPN-015"} & codes(body)


def test_invitees_sharing_a_device_are_flagged(client, pipeline_headers):
    bodies = [send(client, pipeline_headers, e) for e in ring_events()]
    assert [("CPN-014" in codes(b)) for b in bodies] == [False, False, True, True]


def test_real_referrals_on_their_own_phones_stay_quiet(client, pipeline_headers):
    for i in range(4):
        body = send(
            client,
            pipeline_headers,
            factories.coupon(
                account_id=f"friend-{i}",
                referrer_id="popular-user",
                device_id=f"friend-dev-{i}",
                payment_fingerprint=f"cardfp-friend{i:03d}",
                shipping_address_hash=f"addrhash-friend{i:03d}",
                ip=f"10.77.{i}.1",
                account_created_at=at(-60 * 24 * 30),
                occurred_at=at(i * 60),
            ),
        )
        assert not {"CPN-013", "CPN-014", "CPN-015"} & codes(body)
        assert body["outcome"] == "allow", body


def test_a_referral_chain_three_deep_within_a_day_is_flagged(client, pipeline_headers):
    chain = [("c-1", "c-0"), ("c-2", "c-1"), ("c-3", "c-2")]
    found = []
    for i, (account, referrer) in enumerate(chain):
        body = send(
            client,
            pipeline_headers,
            factories.coupon(
                account_id=account,
                referrer_id=referrer,
                device_id=f"chain-dev-{i}",
                ip=f"10.90.{i}.1",
                payment_fingerprint=f"cardfp-chain{i:03d}",
                shipping_address_hash=f"addrhash-chain{i:03d}",
                occurred_at=at(i * 90),
            ),
        )
        found.append("CPN-015" in codes(body))
    assert found == [False, False, True]


# -- the batch scan ------------------------------------------------------------------------
def stored(r: dict, discount: float = 5.0) -> StoredRedemption:
    ms = int(datetime.fromisoformat(r["occurred_at"]).timestamp() * 1000)
    return StoredRedemption(
        Redemption(
            r["account_id"],
            r["campaign_id"],
            ms,
            {
                "device": r["device_id"],
                "payment": r.get("payment_fingerprint"),
                "address": r.get("shipping_address_hash"),
            },
            referrer=r.get("referrer_id"),
            device=r["device_id"],
        ),
        r["event_id"],
        discount,
    )


def test_scan_finds_the_farm_and_the_ring_and_not_the_families():
    rows = [stored(e) for e in (*farm_events(), *family_events(), *ring_events())]
    report = scan_redemptions(rows, min_accounts=5, min_invitees=3)
    by_detector = {f.detector: f for f in report.findings}
    assert len(report.findings) == 2, [f.title for f in report.findings]
    farm = by_detector["coupons.farm"]
    assert farm.members == tuple(sorted(f"farm-{i}" for i in range(8)))
    assert farm.subject_id == "coupon-farm:spring-sale:farm-0"
    assert farm.evidence["shared_entities"] == {"device": 3, "payment": 4}
    assert farm.money == 40.0
    ring = by_detector["coupons.referral_ring"]
    assert ring.members == ("ring-boss", "inv-0", "inv-1", "inv-2", "inv-3")
    assert report.summary()["clusters"] == 5  # the farm, three households, the ring's phone
    # the same data gives the same keys: recording again is a no-op
    again = scan_redemptions(rows, min_accounts=5, min_invitees=3)
    assert [f.key for f in again.findings] == [f.key for f in report.findings]


def test_a_lower_threshold_turns_a_household_into_a_finding():
    rows = [stored(e) for e in family_events()]
    assert scan_redemptions(rows, min_accounts=5).findings == []
    assert len(scan_redemptions(rows, min_accounts=3).findings) == 3


def _env(monkeypatch, settings):
    monkeypatch.setenv("RISKCTL_INSTANCE_PATH", settings.instance_path)
    monkeypatch.setenv("RISKCTL_REDIS_URL", settings.redis_url)
    if settings.database_url:
        monkeypatch.setenv("RISKCTL_DATABASE_URL", settings.database_url)


def _scan_cases(runtime):
    with runtime.sessions() as s:
        return s.scalars(
            select(Case).where(Case.source.like("scan:coupons%")).order_by(Case.subject_id)
        ).all()


def test_scan_command_opens_one_case_per_farm_and_is_idempotent(
    client, runtime, settings, pipeline_headers, monkeypatch
):
    for event in (*farm_events(), *family_events(), *ring_events()):
        send(client, pipeline_headers, event)
    _env(monkeypatch, settings)
    runner = CliRunner()

    dry = runner.invoke(main, ["scan", "coupons", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert orjson.loads(dry.output)["farms"] == 1 and _scan_cases(runtime) == []

    first = runner.invoke(main, ["scan", "coupons"])
    assert first.exit_code == 0, first.output
    out = orjson.loads(first.output)
    assert (out["farms"], out["referral_rings"], out["cases"]["opened"]) == (1, 1, 2)
    farm, ring = _scan_cases(runtime)
    assert (farm.subject_id, farm.queue, farm.kind, farm.source) == (
        "coupon-farm:spring-sale:farm-0",
        runtime.checks.routing.queue("coupon_redemption"),
        "coupon_redemption",
        "scan:coupons.farm",
    )
    (finding,) = farm.evidence["findings"]
    assert finding["members"] == sorted(f"farm-{i}" for i in range(8))
    assert (finding["accounts"], finding["redemptions"], finding["campaign"]) == (8, 8, "spring-sale")
    assert ring.subject_id == "referral-ring:ring-boss"

    again = runner.invoke(main, ["scan", "coupons"])
    assert again.exit_code == 0, again.output
    assert orjson.loads(again.output)["cases"] == {"opened": 0, "joined": 0, "unchanged": 2, "listed": 0}
    assert [(c.id, len(c.evidence["findings"])) for c in _scan_cases(runtime)] == [(farm.id, 1), (ring.id, 1)]


def test_scan_command_rejects_an_unknown_link_type(settings, monkeypatch):
    _env(monkeypatch, settings)
    result = CliRunner().invoke(main, ["scan", "coupons", "--link-types", "device,phase-of-moon"])
    assert result.exit_code == 2 and "phase-of-moon" in result.output


def test_a_coupon_check_with_the_link_graph_is_one_redis_round_trip(client, pipeline_headers):
    from riskctl.instruments import REDIS_ROUNDTRIPS

    send(client, pipeline_headers, factories.coupon(account_id="warm-up"))
    before = REDIS_ROUNDTRIPS._value.get()
    bodies = [send(client, pipeline_headers, e) for e in (*farm_events(), *ring_events())]
    assert REDIS_ROUNDTRIPS._value.get() - before == len(bodies)
    assert "CPN-013" in codes(bodies[7]) and "CPN-014" in codes(bodies[-1])
