"""Batch-scan findings → cases and lists.

A scan (``riskctl scan …``) produces :class:`Finding` s: a subject (a shop, an account, a
ring), the members involved, a score and the evidence that convinced the detector. Recording
a finding opens a case in the subject's queue or joins the subject's open case there, exactly
as a flagged decision does, and may put members on a list. Recording is idempotent: a finding
is identified by its ``key`` (e.g. ``brushing:shop42:2026-11-01T10``) and a case never holds
the same key twice, so re-running a scan over the same data changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select, update

from riskctl.cases import OPEN_STATUSES, Routing, priority
from riskctl.casestate import CaseStatus
from riskctl.errors import Conflict
from riskctl.ids import new_id
from riskctl.models import Case, utcnow

MAX_FINDINGS_PER_CASE = 200


@dataclass(frozen=True)
class ListFeed:
    """Put ``value`` of ``entity_type`` on ``list_name`` because of a finding."""

    list_name: str
    entity_type: str
    value: str
    reason: str
    days: int | None = 30


@dataclass(frozen=True)
class Finding:
    detector: str  # "brushing", "rings", "reviews.duplicates", ...
    key: str  # stable id of this finding: the same data gives the same key
    kind: str  # event kind whose queue it belongs to: order, review, coupon_redemption, listing
    subject_id: str  # who the case is about (shop id, account id, ring id)
    title: str
    score: float  # 0-100
    evidence: dict[str, Any]
    shop_id: str | None = None
    money: float | None = None
    members: tuple[str, ...] = ()
    feeds: tuple[ListFeed, ...] = field(default=())

    def as_evidence(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "detector": self.detector,
            "score": round(float(self.score), 2),
            "members": list(self.members),
            **self.evidence,
        }


@dataclass
class RecordReport:
    opened: int = 0
    joined: int = 0
    unchanged: int = 0
    listed: int = 0
    case_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "opened": self.opened,
            "joined": self.joined,
            "unchanged": self.unchanged,
            "listed": self.listed,
        }


def record_findings(
    engine: Engine,
    routing: Routing,
    findings: Iterable[Finding],
    *,
    list_store: Any | None = None,
    now: datetime | None = None,
) -> RecordReport:
    """Open or join one case per finding (one transaction), then feed lists if a store is given."""
    now = now or utcnow()
    report = RecordReport()
    feeds: list[ListFeed] = []
    with engine.begin() as conn:
        for finding in findings:
            queue = routing.queue(finding.kind)
            row = conn.execute(
                select(Case.id, Case.priority, Case.max_score, Case.evidence)
                .where(
                    Case.queue == queue, Case.subject_id == finding.subject_id, Case.status.in_(OPEN_STATUSES)
                )
                .order_by(Case.opened_at)
                .limit(1)
            ).first()
            p = priority(finding.score, finding.money)
            entry = finding.as_evidence()
            if row is None:
                case_id = new_id("case")
                conn.execute(
                    insert(Case),
                    {
                        "id": case_id,
                        "queue": queue,
                        "kind": finding.kind,
                        "subject_id": finding.subject_id,
                        "shop_id": finding.shop_id,
                        "status": CaseStatus.OPEN.value,
                        "priority": p,
                        "sla_due_at": routing.due(queue, now),
                        "decision_count": 0,
                        "money_at_stake": finding.money or 0.0,
                        "max_score": finding.score,
                        "source": f"scan:{finding.detector}"[:40],
                        "title": finding.title[:300],
                        "evidence": {"findings": [entry]},
                        "opened_at": now,
                        "updated_at": now,
                    },
                )
                report.opened += 1
            else:
                case_id = row.id
                evidence = dict(row.evidence or {})
                known = evidence.get("findings", [])
                if any(f.get("key") == finding.key for f in known):
                    report.unchanged += 1
                    report.case_ids.append(case_id)
                    continue
                evidence["findings"] = [*known, entry][-MAX_FINDINGS_PER_CASE:]
                conn.execute(
                    update(Case)
                    .where(Case.id == case_id)
                    .values(
                        evidence=evidence,
                        priority=max(row.priority, p),
                        max_score=max(row.max_score, finding.score),
                        money_at_stake=Case.money_at_stake + (finding.money or 0.0),
                        updated_at=now,
                    )
                )
                report.joined += 1
            report.case_ids.append(case_id)
            feeds.extend(finding.feeds)
    if list_store is not None:
        report.listed = feed_lists(list_store, feeds, now=now)
    return report


def feed_lists(list_store: Any, feeds: Sequence[ListFeed], *, now: datetime | None = None) -> int:
    """Add each feed to its list; an entity already listed is left as it is. Returns how many were added."""
    now = now or utcnow()
    added = 0
    for feed in feeds:
        if list_store.contains(feed.list_name, feed.entity_type, feed.value):
            continue
        expires = now + timedelta(days=feed.days) if feed.days else None
        try:
            list_store.add(
                feed.list_name,
                feed.entity_type,
                feed.value,
                reason=feed.reason,
                actor="scan",
                expires_at=expires,
                source="scan",
            )
        except Conflict:
            continue
        added += 1
    return added
