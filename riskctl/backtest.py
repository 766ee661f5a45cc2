"""Backtests: replay stored decisions through a candidate rule pack before it goes live.

Each stored decision carries the features it was made with (velocity, lists, detector
scores at that moment), so a replay needs no Redis and no re-counting: the candidate
pack sees exactly what the live pack saw. Detector signals are taken as recorded; list
short-circuits are re-derived from the recorded list features.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from riskctl.decisions import Mode, Outcome, Signal, SignalStatus, Source, decide
from riskctl.lists import ListStore
from riskctl.models import Decision, EventRecord
from riskctl.policy import Policy


@dataclass
class RuleStats:
    evaluated: int = 0
    hits: int = 0
    errors: int = 0
    labelled_hits: int = 0
    true_hits: int = 0
    positives: int = 0  # labelled abuse among the events this rule was evaluated on

    def as_dict(self) -> dict[str, Any]:
        return {
            "evaluated": self.evaluated,
            "hits": self.hits,
            "hit_rate": _ratio(self.hits, self.evaluated),
            "errors": self.errors,
            "precision": _ratio(self.true_hits, self.labelled_hits),
            "recall": _ratio(self.true_hits, self.positives),
        }


@dataclass
class BacktestReport:
    candidate_version: str
    events: int = 0
    labelled: int = 0
    positives: int = 0
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)
    rules: dict[str, RuleStats] = field(default_factory=lambda: defaultdict(RuleStats))
    # per outcome level: flagged at or above it, and how many of those are labelled abuse
    outcome_flagged: Counter[str] = field(default_factory=Counter)
    outcome_true: Counter[str] = field(default_factory=Counter)
    outcome_labelled: Counter[str] = field(default_factory=Counter)
    newly_blocked_money: float = 0.0
    released_money: float = 0.0
    by_kind: Counter[str] = field(default_factory=Counter)

    @property
    def changed(self) -> int:
        return sum(n for (a, b), n in self.transitions.items() if a != b)

    def as_dict(self) -> dict[str, Any]:
        return {
            "candidate_version": self.candidate_version,
            "events": self.events,
            "by_kind": dict(self.by_kind),
            "labelled": self.labelled,
            "positives": self.positives,
            "changed": self.changed,
            "transitions": [
                {"from": a, "to": b, "count": n}
                for (a, b), n in sorted(self.transitions.items(), key=lambda kv: -kv[1])
                if a != b
            ],
            "rules": {code: s.as_dict() for code, s in sorted(self.rules.items())},
            "outcomes": {
                level: {
                    "flagged": self.outcome_flagged[level],
                    "precision": _ratio(self.outcome_true[level], self.outcome_labelled[level]),
                    "recall": _ratio(self.outcome_true[level], self.positives),
                }
                for level in ("review", "block")
            },
            "money": {
                "newly_blocked": round(self.newly_blocked_money, 2),
                "released": round(self.released_money, 2),
            },
        }


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _recorded_detector_signals(signals: list[dict[str, Any]]) -> list[Signal]:
    out = []
    for s in signals:
        if s.get("source") != Source.DETECTOR.value:
            continue
        out.append(
            Signal(
                Source.DETECTOR,
                s["code"],
                SignalStatus(s["status"]),
                s.get("description", ""),
                float(s.get("score") or 0.0),
                Outcome.parse(s["forced"]) if s.get("forced") else None,
                Mode(s.get("mode", "live")),
            )
        )
    return out


def stored_decisions(
    engine: Engine, since: datetime | None, until: datetime | None, batch: int = 1000
) -> Iterator[tuple[str, str, str, dict[str, Any], list[dict[str, Any]], float | None]]:
    """(event_id, kind, outcome, features, signals, money at stake), oldest first."""
    query = (
        select(
            Decision.event_id,
            Decision.kind,
            Decision.outcome,
            Decision.features,
            Decision.signals,
            EventRecord.amount,
        )
        .join(EventRecord, Decision.event_pk == EventRecord.id)
        .order_by(EventRecord.occurred_at, Decision.id)
    )
    if since is not None:
        query = query.where(EventRecord.occurred_at >= since)
    if until is not None:
        query = query.where(EventRecord.occurred_at < until)
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=batch).execute(query)
        for row in result:
            yield row.event_id, row.kind, row.outcome, row.features, row.signals, row.amount


def count_decisions(engine: Engine, since: datetime | None, until: datetime | None) -> int:
    from sqlalchemy import func

    query = select(func.count()).select_from(Decision).join(EventRecord, Decision.event_pk == EventRecord.id)
    if since is not None:
        query = query.where(EventRecord.occurred_at >= since)
    if until is not None:
        query = query.where(EventRecord.occurred_at < until)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


def backtest(
    engine: Engine,
    candidate: Policy,
    *,
    labels: Mapping[str, bool] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> BacktestReport:
    """Replay stored decisions through ``candidate``; ``labels`` maps event_id → is abuse."""
    labels = labels or {}
    report = BacktestReport(candidate.version)
    for event_id, kind, old, features, recorded, amount in stored_decisions(engine, since, until):
        signals = [
            *ListStore.signals(features),
            *candidate.evaluate(kind, features),
            *_recorded_detector_signals(recorded),
        ]
        new = decide(signals, candidate.thresholds(kind)).outcome.label
        report.events += 1
        report.by_kind[kind] += 1
        report.transitions[(old, new)] += 1
        label = labels.get(event_id)
        if label is not None:
            report.labelled += 1
            report.positives += int(label)
        money = amount or 0.0
        if new == "block" and old != "block":
            report.newly_blocked_money += money
        elif old == "block" and new != "block":
            report.released_money += money
        for level, rank in (("review", Outcome.REVIEW), ("block", Outcome.BLOCK)):
            if Outcome.parse(new) >= rank:
                report.outcome_flagged[level] += 1
                if label is not None:
                    report.outcome_labelled[level] += 1
                    report.outcome_true[level] += int(label)
        for s in signals:
            if s.source is not Source.RULE:
                continue
            stats = report.rules[s.code]
            stats.evaluated += 1
            stats.positives += int(bool(label))
            if s.status is SignalStatus.ERROR:
                stats.errors += 1
            elif s.status is SignalStatus.HIT:
                stats.hits += 1
                if label is not None:
                    stats.labelled_hits += 1
                    stats.true_hits += int(label)
        if progress is not None:
            progress(1)
    return report
