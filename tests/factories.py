"""Valid example events of every kind; tests change what they need."""

from __future__ import annotations

import itertools
from typing import Any

_seq = itertools.count()


def _next_id(prefix: str) -> str:
    return f"{prefix}-{next(_seq):06d}"


def order(**over: Any) -> dict[str, Any]:
    ev = {
        "kind": "order",
        "event_id": _next_id("evt-ord"),
        "occurred_at": "2026-11-20T10:00:00+08:00",
        "device_id": "device-aaa-111",
        "ip": "203.0.113.45",
        "order_id": _next_id("ord"),
        "buyer_id": "buyer-1",
        "shop_id": "shop-1",
        "items": [{"product_id": "prod-1", "quantity": 2, "unit_price": 12.5}],
        "amount": 25.0,
        "currency": "USD",
        "payment": {"method": "card", "fingerprint": "cardfp-77777777"},
        "shipping_address_hash": "addrhash-5555555",
    }
    ev.update(over)
    return ev


def review(**over: Any) -> dict[str, Any]:
    ev = {
        "kind": "review",
        "event_id": _next_id("evt-rev"),
        "occurred_at": "2026-11-20T11:00:00Z",
        "device_id": "device-bbb-222",
        "ip": "198.51.100.7",
        "review_id": _next_id("rev"),
        "reviewer_id": "buyer-2",
        "product_id": "prod-1",
        "shop_id": "shop-1",
        "order_id": "ord-earlier-1",
        "rating": 4,
        "text": "Solid product, arrived quickly and matches the description.",
    }
    ev.update(over)
    return ev


def coupon(**over: Any) -> dict[str, Any]:
    ev = {
        "kind": "coupon_redemption",
        "event_id": _next_id("evt-cpn"),
        "occurred_at": "2026-11-20T12:00:00Z",
        "device_id": "device-ccc-333",
        "ip": "192.0.2.10",
        "account_id": "acct-9",
        "account_created_at": "2026-11-20T11:50:00Z",
        "coupon_code": "WELCOME10",
        "campaign_id": "welcome-nov",
        "discount_amount": 10.0,
        "referrer_id": "acct-1",
        "payment_fingerprint": "cardfp-88888888",
        "shipping_address_hash": "addrhash-6666666",
    }
    ev.update(over)
    return ev


def listing(**over: Any) -> dict[str, Any]:
    ev = {
        "kind": "listing",
        "event_id": _next_id("evt-lst"),
        "occurred_at": "2026-11-20T13:00:00Z",
        "device_id": "device-ddd-444",
        "ip": "2001:db8::1",
        "listing_id": _next_id("lst"),
        "shop_id": "shop-2",
        "title": "Leather wallet, brown",
        "description": "Full-grain leather, six card slots.",
        "category": "accessories",
        "price": 39.0,
        "currency": "EUR",
        "image_hashes": ["c3c3c3c3e1e1f0f0"],
    }
    ev.update(over)
    return ev


FACTORIES = {"order": order, "review": review, "coupon_redemption": coupon, "listing": listing}
