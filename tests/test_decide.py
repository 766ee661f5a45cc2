"""The decision function, as a table."""

from __future__ import annotations

import pytest

from riskctl.decisions import Mode, Outcome, Signal, SignalStatus, Source, Thresholds, decide

T = Thresholds(review=50, block=80)


def hit(
    code: str,
    score: float = 0,
    forced: Outcome | None = None,
    source: Source = Source.RULE,
    mode: Mode = Mode.LIVE,
) -> Signal:
    return Signal(source, code, SignalStatus.HIT, code, score, forced, mode)


def miss(code: str, score: float = 90) -> Signal:
    return Signal(Source.RULE, code, SignalStatus.NO_HIT, code, score)


def err(code: str) -> Signal:
    return Signal(Source.RULE, code, SignalStatus.ERROR, code, 90)


CASES = [
    ("nothing", [], Outcome.ALLOW, 0),
    ("misses never count", [miss("a"), miss("b")], Outcome.ALLOW, 0),
    ("errors never count", [err("a")], Outcome.ALLOW, 0),
    ("below review", [hit("a", 49.9)], Outcome.ALLOW, 49.9),
    ("at review", [hit("a", 30), hit("b", 20)], Outcome.REVIEW, 50),
    ("at block", [hit("a", 80)], Outcome.BLOCK, 80),
    ("score capped at 100", [hit("a", 70), hit("b", 70)], Outcome.BLOCK, 100),
    ("shadow hits never count", [hit("a", 90, mode=Mode.SHADOW)], Outcome.ALLOW, 0),
    ("forced review beats low score", [hit("a", forced=Outcome.REVIEW)], Outcome.REVIEW, 0),
    (
        "forced block beats forced review",
        [hit("a", forced=Outcome.REVIEW), hit("b", forced=Outcome.BLOCK)],
        Outcome.BLOCK,
        0,
    ),
    ("forced review caps a high score", [hit("a", 95), hit("b", forced=Outcome.REVIEW)], Outcome.REVIEW, 95),
    ("shadow forced block ignored", [hit("a", forced=Outcome.BLOCK, mode=Mode.SHADOW)], Outcome.ALLOW, 0),
    (
        "allow list short-circuits",
        [hit("a", 95), hit("al", forced=Outcome.ALLOW, source=Source.LIST)],
        Outcome.ALLOW,
        0,
    ),
    (
        "block list beats allow list",
        [
            hit("al", forced=Outcome.ALLOW, source=Source.LIST),
            hit("bl", forced=Outcome.BLOCK, source=Source.LIST),
        ],
        Outcome.BLOCK,
        0,
    ),
    ("negative scores lower the total", [hit("a", 60), hit("good", -20)], Outcome.ALLOW, 40),
]


@pytest.mark.parametrize(("name", "signals", "outcome", "score"), CASES, ids=[c[0] for c in CASES])
def test_decide_table(name, signals, outcome, score):
    verdict = decide(signals, T)
    assert verdict.outcome is outcome
    assert verdict.score == pytest.approx(score)


def test_reasons_are_live_hits_largest_contribution_first():
    verdict = decide(
        [hit("small", 10), miss("m"), hit("big", 45), hit("mid", 20), hit("sh", 99, mode=Mode.SHADOW)], T
    )
    assert [r.code for r in verdict.reasons] == ["big", "mid", "small"]


def test_forced_reason_comes_first():
    verdict = decide([hit("big", 45), hit("forced", forced=Outcome.BLOCK)], T)
    assert verdict.reasons[0].code == "forced"


def test_thresholds_are_validated():
    with pytest.raises(ValueError, match="review <= block"):
        Thresholds(review=90, block=50)


def test_outcomes_are_ordered():
    assert Outcome.ALLOW < Outcome.REVIEW < Outcome.BLOCK
    assert Outcome.parse("Block") is Outcome.BLOCK
    with pytest.raises(ValueError):
        Outcome.parse("deny")
