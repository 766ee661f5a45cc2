"""REV-015..017 (added with the simulator): a review from an account under 30 days old is
flagged only with a second sign - no purchase, a repeat at one shop, a fast order-review loop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests import factories

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def iso(t: datetime) -> str:
    return t.isoformat()


def check(client, headers, **over) -> dict:
    r = client.post("/v1/checks", json=factories.review(**over), headers=headers)
    assert r.status_code == 200, r.data
    body = r.get_json()
    body["codes"] = {x["code"] for x in body["reasons"]}
    return body


def test_young_account_without_a_purchase_is_held_and_an_old_one_is_not(client, pipeline_headers):
    young = check(
        client,
        pipeline_headers,
        reviewer_id="young-1",
        order_id=None,
        occurred_at=iso(T0),
        reviewer_created_at=iso(T0 - timedelta(days=3)),
    )
    assert {"REV-002", "REV-015"} <= young["codes"]
    assert young["outcome"] == "review"
    old = check(
        client,
        pipeline_headers,
        reviewer_id="old-1",
        order_id=None,
        occurred_at=iso(T0),
        reviewer_created_at=iso(T0 - timedelta(days=400)),
        device_id="device-old-1",
    )
    assert "REV-015" not in old["codes"]
    assert old["outcome"] == "allow"


def test_young_account_reviewing_one_shop_twice(client, pipeline_headers):
    created = iso(T0 - timedelta(days=5))
    first = check(
        client,
        pipeline_headers,
        reviewer_id="y2",
        shop_id="s2",
        occurred_at=iso(T0),
        reviewer_created_at=created,
    )
    assert "REV-016" not in first["codes"]
    second = check(
        client,
        pipeline_headers,
        reviewer_id="y2",
        shop_id="s2",
        occurred_at=iso(T0 + timedelta(days=2)),
        reviewer_created_at=created,
    )
    assert "REV-016" in second["codes"]


def test_five_stars_minutes_after_delivery_from_a_young_account(client, pipeline_headers):
    delivered = iso(T0 - timedelta(minutes=5))
    young = check(
        client,
        pipeline_headers,
        reviewer_id="y3",
        rating=5,
        occurred_at=iso(T0),
        order_delivered_at=delivered,
        reviewer_created_at=iso(T0 - timedelta(days=2)),
    )
    assert "REV-017" in young["codes"]
    slow = check(
        client,
        pipeline_headers,
        reviewer_id="y4",
        rating=5,
        occurred_at=iso(T0),
        order_delivered_at=iso(T0 - timedelta(days=2)),
        reviewer_created_at=iso(T0 - timedelta(days=2)),
        device_id="device-y4",
    )
    assert "REV-017" not in slow["codes"]
    old = check(
        client,
        pipeline_headers,
        reviewer_id="o3",
        rating=5,
        occurred_at=iso(T0),
        order_delivered_at=delivered,
        reviewer_created_at=iso(T0 - timedelta(days=300)),
        device_id="device-o3",
        text="Bought this for my dad, he uses it every morning and likes it.",
    )
    assert "REV-017" not in old["codes"], old
    assert old["outcome"] == "allow", old["codes"]
