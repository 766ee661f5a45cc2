"""Figures for the moderators' dashboard: queue sizes, SLA breaches, what was decided and
concluded over time, and each rule's precision as judged by resolved cases.

All aggregation runs in SQL (``date()`` exists on SQLite and PostgreSQL), so the cost does
not grow with the number of rows sent to the browser.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, case, func, select

from riskctl.casestate import CaseStatus, Resolution, label_of
from riskctl.models import Case, CaseDecision, Decision, DecisionHit, EventRecord, utcnow

ACTIVE = (CaseStatus.OPEN.value, CaseStatus.CLAIMED.value)


def summary(engine: Engine, now: datetime | None = None) -> dict[str, Any]:
    """Per queue: open, claimed, past their SLA; and resolutions so far."""
    now = now or utcnow()
    queues: dict[str, dict[str, int]] = defaultdict(lambda: {"open": 0, "claimed": 0, "breached": 0})
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                Case.queue,
                Case.status,
                func.count(),
                func.sum(case((Case.sla_due_at < now, 1), else_=0)),
            )
            .where(Case.status.in_(ACTIVE))
            .group_by(Case.queue, Case.status)
        )
        for queue, status, n, breached in rows:
            queues[queue][status] += n
            queues[queue]["breached"] += int(breached or 0)
        resolutions = dict(
            conn.execute(
                select(Case.resolution, func.count())
                .where(Case.resolution.is_not(None))
                .group_by(Case.resolution)
            ).all()
        )
    return {
        "queues": {q: dict(v) for q, v in sorted(queues.items())},
        "resolutions": {r.value: int(resolutions.get(r.value, 0)) for r in Resolution},
    }


def _day(value: Any) -> str:
    return value.isoformat()[:10] if hasattr(value, "isoformat") else str(value)[:10]


def series(engine: Engine, days: int = 30, now: datetime | None = None) -> dict[str, Any]:
    """Chart data: cases opened per day and queue, decisions per day and outcome (by event
    time), resolutions per queue, and per-rule precision from resolved cases."""
    now = now or utcnow()
    since = now - timedelta(days=days)
    with engine.connect() as conn:
        opened = conn.execute(
            select(func.date(Case.opened_at), Case.queue, func.count())
            .where(Case.opened_at >= since)
            .group_by(func.date(Case.opened_at), Case.queue)
        ).all()
        decided = conn.execute(
            select(func.date(EventRecord.occurred_at), Decision.outcome, func.count())
            .join(EventRecord, EventRecord.id == Decision.event_pk)
            .where(EventRecord.occurred_at >= since)
            .group_by(func.date(EventRecord.occurred_at), Decision.outcome)
        ).all()
        resolved = conn.execute(
            select(Case.queue, Case.resolution, func.count())
            .where(Case.resolution.is_not(None))
            .group_by(Case.queue, Case.resolution)
        ).all()
        judged = conn.execute(
            select(DecisionHit.code, Case.status, Case.resolution, func.count())
            .join(CaseDecision, CaseDecision.decision_id == DecisionHit.decision_id)
            .join(Case, Case.id == CaseDecision.case_id)
            .where(Case.resolution.is_not(None), DecisionHit.mode == "live")
            .group_by(DecisionHit.code, Case.status, Case.resolution)
        ).all()

    def pivot(rows: Sequence[Any]) -> dict[str, Any]:
        labels = sorted({_day(r[0]) for r in rows})
        keys = sorted({r[1] for r in rows})
        grid = {k: [0] * len(labels) for k in keys}
        index = {d: i for i, d in enumerate(labels)}
        for day, key, n in rows:
            grid[key][index[_day(day)]] += int(n)
        return {"labels": labels, "datasets": [{"label": k, "data": grid[k]} for k in keys]}

    queues = sorted({r[0] for r in resolved})
    outcome_sets = [
        {
            "label": r.value,
            "data": [sum(int(n) for q2, res, n in resolved if q2 == q and res == r.value) for q in queues],
        }
        for r in Resolution
    ]
    hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # code → [abuse, legitimate]
    for code, status, resolution, n in judged:
        label = label_of(CaseStatus(status), Resolution(str(resolution)))
        if label is not None:
            hits[code][0 if label else 1] += int(n)
    ranked = sorted(hits.items(), key=lambda kv: (-sum(kv[1]), kv[0]))[:20]
    precision = [{"rule": c, "precision": round(a / (a + b), 3), "judged": a + b} for c, (a, b) in ranked]
    return {
        "cases_per_day": pivot(opened),
        "decisions_per_day": pivot(decided),
        "outcomes": {"labels": queues, "datasets": outcome_sets},
        "rule_precision": precision,
    }
