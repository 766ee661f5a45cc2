"""Outcomes, signals and the pure decision function.

A :class:`Signal` is the record of one rule, list or detector evaluated for one event,
hit or not. :func:`decide` turns signals into an outcome: forced outcomes by priority
(``block`` > ``review`` > ``allow``), otherwise the summed live score against the
kind's thresholds. It is pure: same inputs, same answer, no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Outcome(enum.IntEnum):
    """Ordered: ``allow < review < block``. The value is the priority."""

    ALLOW = 0
    REVIEW = 1
    BLOCK = 2

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Outcome:
        try:
            return cls[text.upper()]
        except KeyError:
            raise ValueError(f"unknown outcome {text!r}; expected allow, review or block") from None


class SignalStatus(enum.StrEnum):
    HIT = "hit"
    NO_HIT = "no_hit"
    ERROR = "error"


class Mode(enum.StrEnum):
    LIVE = "live"
    SHADOW = "shadow"


class Source(enum.StrEnum):
    RULE = "rule"
    DETECTOR = "detector"
    LIST = "list"


@dataclass(frozen=True, slots=True)
class Signal:
    """One evaluated rule/list/detector. ``score`` is the contribution when it hits."""

    source: Source
    code: str
    status: SignalStatus
    description: str = ""
    score: float = 0.0
    forced: Outcome | None = None
    mode: Mode = Mode.LIVE
    details: dict[str, Any] = field(default_factory=dict)
    duration_us: float = 0.0
    policy: str | None = None
    # a miss's stored form, built once: a rule pack's misses are prebuilt and shared
    _miss: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def counts(self) -> bool:
        """Whether this signal may change the outcome (a live hit)."""
        return self.status is SignalStatus.HIT and self.mode is Mode.LIVE

    def to_dict(self) -> dict[str, Any]:
        if self.status is SignalStatus.NO_HIT and not self.details:
            # Most signals of a check are misses; their text lives in the versioned pack.
            # The same (read-only) dict each time: a pack's misses are shared between checks.
            if self._miss is None:
                object.__setattr__(
                    self,
                    "_miss",
                    {
                        "source": self.source.value,
                        "code": self.code,
                        "status": "no_hit",
                        "mode": self.mode.value,
                        "duration_us": round(self.duration_us, 3),
                    },
                )
            return self._miss  # type: ignore[return-value]
        return {
            "source": self.source.value,
            "code": self.code,
            "status": self.status.value,
            "mode": self.mode.value,
            "score": self.score,
            "forced": self.forced.label if self.forced is not None else None,
            "description": self.description,
            "policy": self.policy,
            "details": self.details,
            "duration_us": round(self.duration_us, 3),
        }


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Score at or above ``review`` reviews, at or above ``block`` blocks (0-100 scale)."""

    review: float = 50.0
    block: float = 80.0

    def __post_init__(self) -> None:
        if not 0 <= self.review <= self.block <= 100:
            raise ValueError(f"thresholds must satisfy 0 <= review <= block <= 100, got {self}")


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    source: Source
    description: str
    contribution: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "source": self.source.value, "description": self.description}


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    score: float
    reasons: tuple[Reason, ...]


MAX_SCORE = 100.0


def decide(signals: list[Signal] | tuple[Signal, ...], thresholds: Thresholds) -> Verdict:
    """Forced outcomes by priority, else the summed live score against ``thresholds``.

    An allow-list hit (a forced ``allow`` from a list) short-circuits to ``allow`` unless
    something forces a harsher outcome than allow *from a list* as well; rule-forced
    outcomes outrank scores. Reasons are the live hits, largest contribution first.
    """
    live = [s for s in signals if s.counts]
    score = min(MAX_SCORE, max(0.0, sum(s.score for s in live)))

    forced = [s for s in live if s.forced is not None]
    allow_listed = [s for s in forced if s.forced is Outcome.ALLOW and s.source is Source.LIST]
    block_listed = [s for s in forced if s.forced is not Outcome.ALLOW and s.source is Source.LIST]
    if allow_listed and not block_listed:
        reasons = tuple(_reason(s) for s in allow_listed)
        return Verdict(Outcome.ALLOW, 0.0, reasons)

    if forced:
        top = max(s.forced for s in forced if s.forced is not None)
        outcome = top
    elif score >= thresholds.block:
        outcome = Outcome.BLOCK
    elif score >= thresholds.review:
        outcome = Outcome.REVIEW
    else:
        outcome = Outcome.ALLOW

    ordered = sorted(
        live,
        key=lambda s: (s.forced is not None and s.forced == outcome, s.score),
        reverse=True,
    )
    reasons = tuple(_reason(s) for s in ordered if s.forced is not Outcome.ALLOW)
    return Verdict(outcome, round(score, 2), reasons)


def _reason(s: Signal) -> Reason:
    return Reason(code=s.code, source=s.source, description=s.description, contribution=s.score)
