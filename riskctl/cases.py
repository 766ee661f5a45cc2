"""Opening cases: every ``review``/``block`` decision opens a case or joins the open case of
the same subject in the same queue, inside the check's single transaction.

Routing (kind → queue) and each queue's SLA are configuration. Priority orders the queue:
the decision's score, the money at stake and - once reputation is known - the subject's
record; a case's priority only rises as decisions join it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Float, bindparam, insert, select, update

from riskctl.casestate import CaseStatus, Resolution, label_of
from riskctl.ids import new_id
from riskctl.models import Case, CaseDecision, Decision, EventRecord

DEFAULT_QUEUES = {"order": "orders", "review": "reviews", "coupon_redemption": "coupons", "listing": "ip"}
DEFAULT_SLA_HOURS = {"orders": 24.0, "reviews": 48.0, "coupons": 12.0, "ip": 72.0}
OPEN_STATUSES = (CaseStatus.OPEN.value, CaseStatus.CLAIMED.value)


def priority(score: float, money: float | None, reputation: float | None = None) -> float:
    """0-100. Score dominates; money at stake adds up to 25 (log scale: 10 → 6, 1000 → 19);
    a subject with a bad record (reputation near 0) adds up to 15."""
    p = 0.6 * score + min(25.0, 6.25 * math.log10(1.0 + max(0.0, money or 0.0)))
    if reputation is not None:
        p += 15.0 * (1.0 - max(0.0, min(1.0, reputation)))
    return round(min(100.0, p), 2)


def subject_reputation(kind: str, features: dict[str, Any]) -> float | None:
    """The case subject's reputation as the check read it (a shop for listings, else the account)."""
    name = "reputation.shop" if kind == "listing" else "reputation.buyer"
    value, n = features.get(name), features.get(f"{name}_n")
    # no record yet (n == 0): the prior says nothing about this subject, so no adjustment
    return float(value) if isinstance(value, int | float) and n else None


@dataclass(frozen=True)
class Routing:
    queues: dict[str, str]
    sla_hours: dict[str, float]

    def queue(self, kind: str) -> str:
        return self.queues.get(kind, kind)

    def due(self, queue: str, at: datetime) -> datetime:
        return at + timedelta(hours=self.sla_hours.get(queue, 24.0))


# Built once: this runs inside every flagged check, and building the statement costs more
# than executing it.
_OPEN_CASE = (
    select(Case.id, Case.priority, Case.max_score)
    .where(
        Case.queue == bindparam("queue"),
        Case.subject_id == bindparam("subject_id"),
        Case.status.in_(OPEN_STATUSES),
    )
    .order_by(Case.opened_at)
    .limit(1)
)
_JOIN_CASE = (
    update(Case)
    .where(Case.id == bindparam("case_id"))
    .values(
        decision_count=Case.decision_count + 1,
        money_at_stake=Case.money_at_stake + bindparam("money", type_=Float),
        priority=bindparam("priority", type_=Float),
        max_score=bindparam("max_score", type_=Float),
        updated_at=bindparam("now", type_=Case.updated_at.type),
    )
)


def open_or_join(
    conn: Connection,
    routing: Routing,
    *,
    decision_id: str,
    kind: str,
    subject_id: str,
    shop_id: str | None,
    score: float,
    money: float | None,
    title: str,
    reasons: list[dict[str, Any]],
    now: datetime,
    reputation: float | None = None,
) -> str:
    """The id of the case this decision opened or joined (run inside the check's transaction)."""
    queue = routing.queue(kind)
    p = priority(score, money, reputation)
    existing = conn.execute(_OPEN_CASE, {"queue": queue, "subject_id": subject_id}).first()
    if existing is not None:
        case_id = existing.id
        conn.execute(
            _JOIN_CASE,
            {
                "case_id": case_id,
                "money": money or 0.0,
                "priority": max(existing.priority, p),
                "max_score": max(existing.max_score, score),
                "now": now,
            },
        )
    else:
        case_id = new_id("case")
        conn.execute(
            insert(Case),
            {
                "id": case_id,
                "queue": queue,
                "kind": kind,
                "subject_id": subject_id,
                "shop_id": shop_id,
                "status": CaseStatus.OPEN.value,
                "priority": p,
                "sla_due_at": routing.due(queue, now),
                "decision_count": 1,
                "money_at_stake": money or 0.0,
                "max_score": score,
                "source": "decision",
                "title": title[:300],
                "evidence": {"first_reasons": reasons[:5]},
                "opened_at": now,
                "updated_at": now,
            },
        )
    conn.execute(insert(CaseDecision), {"case_id": case_id, "decision_id": decision_id, "added_at": now})
    return case_id


def case_labels(conn: Connection) -> dict[str, bool]:
    """event_id → is abuse, for every event of a case people have concluded on."""
    rows = conn.execute(
        select(Decision.event_id, Case.status, Case.resolution)
        .join(CaseDecision, CaseDecision.decision_id == Decision.id)
        .join(Case, Case.id == CaseDecision.case_id)
        .join(EventRecord, EventRecord.id == Decision.event_pk)
        .where(Case.resolution.is_not(None))
    )
    out = {}
    for event_id, status, resolution in rows:
        label = label_of(CaseStatus(status), Resolution(resolution) if resolution is not None else None)
        if label is not None:
            out[event_id] = label
    return out
