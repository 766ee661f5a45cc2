"""A small built-in policy: used when no rule pack folder is configured.

It is deliberately tiny (one or two checks per kind); real policy lives in ``rules/``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from riskctl.decisions import Signal, SignalStatus, Source, Thresholds


@dataclass(frozen=True)
class _Check:
    code: str
    kind: str
    description: str
    score: float
    test: Callable[[dict[str, Any]], bool]


def _get(f: dict[str, Any], name: str, default: Any = 0) -> Any:
    value = f.get(name)
    return default if value is None else value


_CHECKS: tuple[_Check, ...] = (
    _Check(
        "BUILTIN-ORD-1",
        "order",
        "3+ orders by one buyer at one shop within an hour",
        60,
        lambda f: _get(f, "velocity.buyer_shop.orders_1h") >= 3,
    ),
    _Check(
        "BUILTIN-ORD-2",
        "order",
        "one device behind 5+ buyers in a day",
        50,
        lambda f: _get(f, "velocity.device.buyers_24h") >= 5,
    ),
    _Check(
        "BUILTIN-REV-1",
        "review",
        "same text posted by 3+ accounts in a day",
        60,
        lambda f: _get(f, "velocity.text.reviewers_24h") >= 3,
    ),
    _Check(
        "BUILTIN-CPN-1",
        "coupon_redemption",
        "3+ accounts redeemed on this device in 30 days",
        60,
        lambda f: _get(f, "velocity.device.accounts_30d") >= 3,
    ),
    _Check(
        "BUILTIN-LST-1",
        "listing",
        "branded listing priced under 10",
        50,
        lambda f: bool(_get(f, "listing.brand", "")) and _get(f, "listing.price") < 10,
    ),
)


class BuiltinPolicy:
    def __init__(self) -> None:
        text = "|".join(f"{c.code}:{c.kind}:{c.score}:{c.description}" for c in _CHECKS)
        self._version = "builtin-" + hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def version(self) -> str:
        return self._version

    def thresholds(self, kind: str) -> Thresholds:
        return Thresholds(review=50, block=90)

    def evaluate(self, kind: str, features: dict[str, Any]) -> list[Signal]:
        out = []
        for check in _CHECKS:
            if check.kind != kind:
                continue
            hit = check.test(features)
            out.append(
                Signal(
                    Source.RULE,
                    check.code,
                    SignalStatus.HIT if hit else SignalStatus.NO_HIT,
                    check.description,
                    check.score,
                )
            )
        return out
