"""Static features: what can be read off the event itself, with no I/O."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from riskctl.events import (
    BaseEvent,
    CouponRedemptionEvent,
    ListingEvent,
    OrderEvent,
    ReviewEvent,
)
from riskctl.features import FeatureSpec, FeatureType
from riskctl.text import normalize_text

F, INT, B, S = FeatureType.FLOAT, FeatureType.INT, FeatureType.BOOL, FeatureType.STR
ORDER, REVIEW, COUPON, LISTING = (
    frozenset({"order"}),
    frozenset({"review"}),
    frozenset({"coupon_redemption"}),
    frozenset({"listing"}),
)

STATIC_SCHEMA: tuple[FeatureSpec, ...] = (
    FeatureSpec("kind", S, "event kind"),
    FeatureSpec("hour_of_day", INT, "UTC hour the event occurred"),
    FeatureSpec("ip_is_v6", B, "the client IP is IPv6"),
    FeatureSpec(
        "account_age_minutes",
        F,
        "age of the acting account when known",
        frozenset({"order", "review", "coupon_redemption"}),
    ),
    FeatureSpec("order.amount", F, "order total", ORDER),
    FeatureSpec("order.item_count", INT, "distinct items", ORDER),
    FeatureSpec("order.quantity", INT, "units ordered", ORDER),
    FeatureSpec("order.max_unit_price", F, "highest unit price", ORDER),
    FeatureSpec("order.currency", S, "currency code", ORDER),
    FeatureSpec("order.payment_method", S, "payment method", ORDER),
    FeatureSpec("order.has_coupon", B, "a coupon code was used", ORDER),
    FeatureSpec("order.has_payment_fingerprint", B, "the PSP sent a card fingerprint", ORDER),
    FeatureSpec("order.parcel_weight_grams", INT, "declared parcel weight, when sent", ORDER),
    FeatureSpec("review.rating", INT, "stars, 1-5", REVIEW),
    FeatureSpec("review.text", S, "review text", REVIEW),
    FeatureSpec("review.text_length", INT, "characters of text", REVIEW),
    FeatureSpec("review.has_order", B, "the review names an order", REVIEW),
    FeatureSpec("review.seconds_since_delivery", F, "seconds from delivery to review, when known", REVIEW),
    FeatureSpec("review.image_count", INT, "images attached", REVIEW),
    FeatureSpec("coupon.discount_amount", F, "discount value", COUPON),
    FeatureSpec("coupon.campaign_id", S, "campaign", COUPON),
    FeatureSpec("coupon.has_referrer", B, "the account was referred", COUPON),
    FeatureSpec("coupon.self_referred", B, "the account names itself as its referrer", COUPON),
    FeatureSpec("coupon.new_user_only", B, "the coupon is for new users only", COUPON),
    FeatureSpec("coupon.has_order", B, "the redemption names an order", COUPON),
    FeatureSpec("listing.price", F, "listing price", LISTING),
    FeatureSpec("listing.title", S, "listing title", LISTING),
    FeatureSpec("listing.description", S, "listing description", LISTING),
    FeatureSpec("listing.text", S, "normalised title + description", LISTING),
    FeatureSpec("listing.brand", S, "declared brand (empty when none)", LISTING),
    FeatureSpec("listing.category", S, "category", LISTING),
    FeatureSpec("listing.image_count", INT, "images", LISTING),
    FeatureSpec("seller_account_age_minutes", F, "seller account age when known", LISTING),
)


def _age_minutes(created: datetime | None, at: datetime) -> float | None:
    if created is None:
        return None
    return max(0.0, (at - created).total_seconds() / 60)


def static_features(event: BaseEvent) -> dict[str, Any]:
    at = event.occurred_at
    out: dict[str, Any] = {
        "kind": event.kind,  # type: ignore[attr-defined]
        "hour_of_day": at.hour,
        "ip_is_v6": ":" in event.ip,
    }
    if isinstance(event, OrderEvent):
        out |= {
            "account_age_minutes": _age_minutes(event.buyer_created_at, at),
            "order.amount": event.amount,
            "order.item_count": len(event.items),
            "order.quantity": sum(i.quantity for i in event.items),
            "order.max_unit_price": max(i.unit_price for i in event.items),
            "order.currency": event.currency,
            "order.payment_method": event.payment.method,
            "order.has_coupon": event.coupon_code is not None,
            "order.has_payment_fingerprint": event.payment.fingerprint is not None,
            "order.parcel_weight_grams": event.parcel_weight_grams,
        }
    elif isinstance(event, ReviewEvent):
        delivered = event.order_delivered_at
        out |= {
            "account_age_minutes": _age_minutes(event.reviewer_created_at, at),
            "review.rating": event.rating,
            "review.text": event.text,
            "review.text_length": len(event.text),
            "review.has_order": event.order_id is not None,
            "review.seconds_since_delivery": (
                (at - delivered).total_seconds() if delivered is not None else None
            ),
            "review.image_count": event.image_count,
        }
    elif isinstance(event, CouponRedemptionEvent):
        out |= {
            "account_age_minutes": _age_minutes(event.account_created_at, at),
            "coupon.discount_amount": event.discount_amount,
            "coupon.campaign_id": event.campaign_id,
            "coupon.has_referrer": event.referrer_id is not None,
            # accepted, not rejected: a self-referral is evidence for the rules to weigh
            "coupon.self_referred": event.referrer_id == event.account_id,
            "coupon.new_user_only": event.new_user_only,
            "coupon.has_order": event.order_id is not None,
        }
    elif isinstance(event, ListingEvent):
        out |= {
            "listing.price": event.price,
            "listing.title": event.title,
            "listing.description": event.description,
            "listing.text": normalize_text(f"{event.title} {event.description}"),
            "listing.brand": event.brand or "",
            "listing.category": event.category,
            "listing.image_count": len(event.image_hashes),
            "seller_account_age_minutes": _age_minutes(event.seller_created_at, at),
        }
    return out
