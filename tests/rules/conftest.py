"""A small feature schema for the rule language and rule pack tests."""

from __future__ import annotations

from typing import Any

import pytest

from riskctl.features import FeatureSchema, FeatureSpec
from riskctl.features import FeatureType as T
from riskctl.rulepack import RulePack, build_pack

ORDER = frozenset({"order"})
REVIEW = frozenset({"review"})
LISTING = frozenset({"listing"})

SCHEMA = FeatureSchema(
    [
        FeatureSpec("velocity.buyer_shop.orders_1h", T.INT, kinds=ORDER),
        FeatureSpec("velocity.device.buyers_24h", T.INT),
        FeatureSpec(
            "account_age_minutes", T.FLOAT, kinds=frozenset({"order", "review", "coupon_redemption"})
        ),
        FeatureSpec("order.amount", T.FLOAT, kinds=ORDER),
        FeatureSpec("order.quantity", T.INT, kinds=ORDER),
        FeatureSpec("order.currency", T.STR, kinds=ORDER),
        FeatureSpec("order.has_coupon", T.BOOL, kinds=ORDER),
        FeatureSpec("payment.fingerprint", T.STR, kinds=ORDER),
        FeatureSpec("lists.block.payment", T.STR_LIST),
        FeatureSpec("detector.orders_iforest.score", T.FLOAT, kinds=ORDER),
        FeatureSpec("review.text", T.STR, kinds=REVIEW),
        FeatureSpec("review.rating", T.INT, kinds=REVIEW),
        FeatureSpec("listing.title", T.STR, kinds=LISTING),
        FeatureSpec("listing.price", T.FLOAT, kinds=LISTING),
        FeatureSpec("ip_is_v6", T.BOOL),
        FeatureSpec("hour_of_day", T.INT),
    ]
)


def rule(rid: str, expression: str, **extra: Any) -> dict[str, Any]:
    """A rule document with the required keys filled in."""
    doc: dict[str, Any] = {
        "id": rid,
        "description": f"rule {rid}",
        "expression": expression,
        "policy": "marketplace-policy §4.2 fake transactions",
    }
    if "outcome" not in extra:
        doc["score"] = 40
    doc.update(extra)
    return doc


def make_pack(*rules: dict[str, Any], kind: str = "order", **file_keys: Any) -> RulePack:
    return build_pack({"rules.yaml": {"kind": kind, "rules": list(rules), **file_keys}}, SCHEMA)


@pytest.fixture
def schema() -> FeatureSchema:
    return SCHEMA
