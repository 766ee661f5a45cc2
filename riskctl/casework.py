"""Working the enforcement queue: the one service layer the API and the UI both call.

Every change goes through the state machine in :mod:`riskctl.casestate` (an illegal move is
a :class:`~riskctl.errors.Conflict`), is applied with a conditional UPDATE on the status it
was read in (two moderators racing for one case: one wins, the other gets a 409), and
writes an audit row in the same transaction. Enforcement actions and their statements of
reasons are written in the transaction that resolves the case, so an action is never lost
and never sent for a resolution that did not commit.

Claims expire. A lapsed claim is returned to the queue lazily (whenever the queue is read
or the case is claimed) and by the ``riskctl cases release-expired`` job.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from riskctl import audit, outbox, statements
from riskctl.casestate import CaseStatus, Move, Resolution, legal_moves, transition
from riskctl.errors import Conflict, NotFound, ValidationFailed
from riskctl.ids import new_id
from riskctl.models import (
    AuditEntry,
    Case,
    CaseDecision,
    CaseNote,
    Decision,
    EventRecord,
    OutboxAction,
    Statement,
    utcnow,
)

DEFAULT_CLAIM_TTL = timedelta(minutes=30)
ACTIVE = (CaseStatus.OPEN.value, CaseStatus.CLAIMED.value)
STATUS_FILTERS: dict[str, tuple[str, ...] | None] = {
    "open": (CaseStatus.OPEN.value,),
    "claimed": (CaseStatus.CLAIMED.value,),
    "active": ACTIVE,
    "resolved": (CaseStatus.RESOLVED.value,),
    "appealed": (CaseStatus.APPEALED.value,),
    "closed": (CaseStatus.RESOLVED.value, CaseStatus.APPEAL_UPHELD.value, CaseStatus.APPEAL_REJECTED.value),
    "appeal_upheld": (CaseStatus.APPEAL_UPHELD.value,),
    "appeal_rejected": (CaseStatus.APPEAL_REJECTED.value,),
    "all": None,
}
SORTS = {
    "priority": (Case.priority.desc(), Case.sla_due_at, Case.id),
    "sla": (Case.sla_due_at, Case.priority.desc(), Case.id),
    "opened": (Case.opened_at.desc(), Case.id),
    "oldest": (Case.opened_at, Case.id),
}
MAX_NOTE = 5000
MAX_BULK = 500
# Entities whose sharing links accounts: (label, path in the stored, pseudonymised payload).
LINK_PATHS = (
    ("device", ("device_id",)),
    ("card", ("payment", "fingerprint")),
    ("card", ("payment_fingerprint",)),
    ("address", ("shipping_address_hash",)),
    ("network", ("ip24",)),
)


# -- views -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CaseSummary:
    id: str
    queue: str
    kind: str
    subject_id: str
    shop_id: str | None
    status: str
    resolution: str | None
    priority: float
    sla_due_at: datetime
    assignee: str | None
    claim_expires_at: datetime | None
    decision_count: int
    money_at_stake: float
    max_score: float
    source: str
    title: str
    opened_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    appealed_at: datetime | None
    appeal_reason: str | None
    appeal_decided_by: str | None
    appeal_decided_at: datetime | None

    @property
    def claimed_by(self) -> str | None:
        return self.assignee if self.status == CaseStatus.CLAIMED.value else None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def sla_seconds_left(self, now: datetime | None = None) -> float:
        return (self.sla_due_at - (now or utcnow())).total_seconds()

    @property
    def sla_breached(self) -> bool:
        return self.active and self.sla_seconds_left() < 0

    def legal_moves(self) -> list[str]:
        res = Resolution(self.resolution) if self.resolution else None
        return [m.value for m in legal_moves(CaseStatus(self.status), res)]

    def as_dict(self) -> dict[str, Any]:
        out = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(self).items()}
        out["claimed_by"] = self.claimed_by
        out["sla_breached"] = self.sla_breached
        out["legal_moves"] = self.legal_moves()
        return out


_SUMMARY_COLUMNS = [getattr(Case, f) for f in CaseSummary.__dataclass_fields__]


def _summary(row: Any) -> CaseSummary:
    return CaseSummary(**{f: getattr(row, f) for f in CaseSummary.__dataclass_fields__})


@dataclass(frozen=True)
class DecisionEvidence:
    decision_id: str
    event_id: str
    kind: str
    outcome: str
    score: float
    degraded: bool
    created_at: datetime
    occurred_at: datetime
    rulepack_version: str
    detector_versions: dict[str, Any]
    reasons: list[dict[str, Any]]
    rule_hits: list[dict[str, Any]]  # live and shadow hits and errors, with the values they read
    detector_hits: list[dict[str, Any]]  # with the features that drove the score
    velocity: dict[str, Any]  # velocity features as they were at decision time
    event: dict[str, Any]  # the stored (pseudonymised) event payload

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["created_at"] = self.created_at.isoformat()
        out["occurred_at"] = self.occurred_at.isoformat()
        return out


@dataclass(frozen=True)
class LinkedEntity:
    entity: str  # device | card | address | network
    token_hint: str  # the first characters of the keyed hash, never a raw value
    accounts: list[str]
    events: int


@dataclass(frozen=True)
class CaseView:
    case: CaseSummary
    decisions: list[DecisionEvidence]
    linked: list[LinkedEntity]
    history: list[CaseSummary]  # the subject's other cases, newest first
    subject_outcomes: dict[str, int]  # the subject's decisions by outcome
    group: list[CaseSummary]  # related cases of the same subject or shop across queues
    notes: list[dict[str, Any]]
    statements: list[dict[str, Any]]
    actions: list[dict[str, Any]]
    audit: list[dict[str, Any]] = field(default_factory=list)

    # Convenience for templates: ``view.id``, ``view.status`` ... read through to the case.
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.case, name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "case": self.case.as_dict(),
            "decisions": [d.as_dict() for d in self.decisions],
            "linked": [asdict(link) for link in self.linked],
            "history": [c.as_dict() for c in self.history],
            "subject_outcomes": self.subject_outcomes,
            "group": [c.as_dict() for c in self.group],
            "notes": self.notes,
            "statements": self.statements,
            "actions": self.actions,
            "audit": self.audit,
        }


# -- reads -----------------------------------------------------------------------------------
def list_queue(
    sessions: sessionmaker[Session],
    queue: str | None = None,
    *,
    status: str | None = "active",
    sort: str | None = None,
    order: str = "priority",
    assignee: str | None = None,
    search: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[CaseSummary]:
    """Cases of ``queue`` (all queues when None) by status filter and sort order."""
    sort = sort or order
    if sort not in SORTS:
        raise ValidationFailed(f"sort must be one of {', '.join(SORTS)}")
    status = status or "active"
    if status not in STATUS_FILTERS:
        raise ValidationFailed(f"status must be one of {', '.join(STATUS_FILTERS)}")
    release_expired(sessions)
    q = select(*_SUMMARY_COLUMNS)
    if queue:
        q = q.where(Case.queue == queue)
    statuses = STATUS_FILTERS[status]
    if statuses is not None:
        q = q.where(Case.status.in_(statuses))
    if assignee:
        q = q.where(Case.assignee == assignee)
    if search:
        like = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        q = q.where(
            or_(
                Case.id == search,
                Case.subject_id.like(like, escape="\\"),
                Case.shop_id.like(like, escape="\\"),
                Case.title.like(like, escape="\\"),
            )
        )
    q = q.order_by(*SORTS[sort]).limit(max(1, min(limit, 500))).offset(max(0, offset))
    with sessions() as session:
        return [_summary(r) for r in session.execute(q)]


def count_queue(sessions: sessionmaker[Session], queue: str | None = None, *, status: str = "active") -> int:
    q = select(func.count()).select_from(Case)
    if queue:
        q = q.where(Case.queue == queue)
    statuses = STATUS_FILTERS.get(status)
    if statuses is not None:
        q = q.where(Case.status.in_(statuses))
    with sessions() as session:
        return int(session.execute(q).scalar_one())


def queue_counts(sessions: sessionmaker[Session], now: datetime | None = None) -> dict[str, dict[str, int]]:
    """Per queue: open, claimed, SLA-breached (active and past due) and appealed counts."""
    now = now or utcnow()
    out: dict[str, dict[str, int]] = {}
    q = (
        select(Case.queue, Case.status, (Case.sla_due_at < now).label("late"), func.count())
        .where(Case.status.in_((*ACTIVE, CaseStatus.APPEALED.value)))
        .group_by(Case.queue, Case.status, "late")
    )
    with sessions() as session:
        for queue, status, late, n in session.execute(q):
            c = out.setdefault(queue, {"open": 0, "claimed": 0, "breached": 0, "appealed": 0})
            c[status] += n
            if late and status in ACTIVE:
                c["breached"] += n
    return out


def get_case(sessions: sessionmaker[Session], case_id: str) -> CaseView:
    """A case with all its evidence, ready to show."""
    with sessions() as session:
        row = session.execute(select(*_SUMMARY_COLUMNS).where(Case.id == case_id)).first()
        if row is None:
            raise NotFound(f"no case {case_id!r}")
        case = _summary(row)
        if _lapsed(case, utcnow()):
            release_expired(sessions, case_id=case_id)
            case = _summary(session.execute(select(*_SUMMARY_COLUMNS).where(Case.id == case_id)).one())
        conn = session.connection()
        decisions = _decisions(session, case_id)
        view = CaseView(
            case=case,
            decisions=decisions,
            linked=_linked(conn, case, decisions),
            history=_history(conn, case),
            subject_outcomes=_subject_outcomes(conn, case.subject_id),
            group=_group(conn, case),
            notes=[
                {"id": n.id, "author": n.author, "body": n.body, "created_at": n.created_at.isoformat()}
                for n in session.scalars(
                    select(CaseNote)
                    .where(CaseNote.case_id == case_id)
                    .order_by(CaseNote.created_at, CaseNote.id)
                )
            ],
            statements=[
                {
                    "id": s.id,
                    "action_type": s.action_type,
                    "body": s.body,
                    "created_at": s.created_at.isoformat(),
                }
                for s in session.scalars(
                    select(Statement).where(Statement.case_id == case_id).order_by(Statement.created_at)
                )
            ],
            actions=[
                _action_dict(a)
                for a in session.scalars(
                    select(OutboxAction)
                    .where(OutboxAction.case_id == case_id)
                    .order_by(OutboxAction.created_at)
                )
            ],
            audit=[
                {
                    "seq": a.seq,
                    "at": a.at.isoformat(),
                    "actor": a.actor,
                    "action": a.action,
                    "detail": a.detail,
                }
                for a in session.scalars(
                    select(AuditEntry).where(AuditEntry.subject == f"case:{case_id}").order_by(AuditEntry.seq)
                )
            ],
        )
    return view


def _action_dict(a: OutboxAction) -> dict[str, Any]:
    return {
        "id": a.id,
        "type": a.type,
        "target": a.target,
        "status": a.status,
        "attempts": a.attempts,
        "reverses": a.reverses,
        "statement_id": a.statement_id,
        "last_error": a.last_error,
        "created_by": a.created_by,
        "created_at": a.created_at.isoformat(),
        "delivered_at": a.delivered_at.isoformat() if a.delivered_at else None,
    }


def _decisions(session: Session, case_id: str) -> list[DecisionEvidence]:
    rows = session.execute(
        select(Decision, EventRecord.occurred_at, EventRecord.payload)
        .join(CaseDecision, CaseDecision.decision_id == Decision.id)
        .join(EventRecord, EventRecord.id == Decision.event_pk)
        .where(CaseDecision.case_id == case_id)
        .order_by(Decision.created_at)
        .limit(200)
    )
    out = []
    for d, occurred_at, payload in rows:
        shown = [s for s in d.signals if s.get("status") in ("hit", "error")]
        out.append(
            DecisionEvidence(
                decision_id=d.id,
                event_id=d.event_id,
                kind=d.kind,
                outcome=d.outcome,
                score=d.score,
                degraded=d.degraded,
                created_at=d.created_at,
                occurred_at=occurred_at,
                rulepack_version=d.rulepack_version,
                detector_versions=d.detector_versions,
                reasons=d.reasons,
                rule_hits=[s for s in shown if s.get("source") != "detector"],
                detector_hits=[s for s in shown if s.get("source") == "detector"],
                velocity={k: v for k, v in sorted(d.features.items()) if k.startswith("velocity.")},
                event=payload,
            )
        )
    return out


def _path_get(payload: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = payload
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _linked(conn: Connection, case: CaseSummary, decisions: list[DecisionEvidence]) -> list[LinkedEntity]:
    """Other accounts seen on the devices, cards, addresses and networks of this case."""
    out: list[LinkedEntity] = []
    seen: set[tuple[str, str]] = set()
    for label, path in LINK_PATHS:
        for token in {_path_get(d.event, path) for d in decisions} - {None, ""}:
            if (label, token) in seen:
                continue
            seen.add((label, token))
            rows = conn.execute(
                select(EventRecord.subject_id, func.count())
                .where(EventRecord.payload[path].as_string() == str(token))
                .group_by(EventRecord.subject_id)
                .limit(50)
            ).all()
            accounts = sorted({s for s, _ in rows if s and s != case.subject_id})
            if accounts:
                out.append(LinkedEntity(label, str(token)[:10], accounts, sum(n for _, n in rows)))
    return out


def _history(conn: Connection, case: CaseSummary) -> list[CaseSummary]:
    rows = conn.execute(
        select(*_SUMMARY_COLUMNS)
        .where(Case.subject_id == case.subject_id, Case.id != case.id)
        .order_by(Case.opened_at.desc())
        .limit(50)
    )
    return [_summary(r) for r in rows]


def _subject_outcomes(conn: Connection, subject_id: str) -> dict[str, int]:
    rows = conn.execute(
        select(Decision.outcome, func.count())
        .join(EventRecord, EventRecord.id == Decision.event_pk)
        .where(EventRecord.subject_id == subject_id)
        .group_by(Decision.outcome)
    )
    return {outcome: n for outcome, n in rows}


def group_condition(subject_id: str, shop_id: str | None) -> Any:
    """Cases that belong together: the same subject, or the same shop (a seller's orders,
    reviews, listings), where the shop is itself a subject in the IP queue."""
    keys = {subject_id} | ({shop_id} if shop_id else set())
    return or_(Case.subject_id.in_(keys), Case.shop_id.in_(keys))


def _group(conn: Connection, case: CaseSummary) -> list[CaseSummary]:
    rows = conn.execute(
        select(*_SUMMARY_COLUMNS)
        .where(group_condition(case.subject_id, case.shop_id), Case.id != case.id, Case.status.in_(ACTIVE))
        .order_by(Case.priority.desc())
        .limit(50)
    )
    return [_summary(r) for r in rows]


# -- moves -----------------------------------------------------------------------------------
def _lapsed(case: CaseSummary | Any, now: datetime) -> bool:
    return (
        case.status == CaseStatus.CLAIMED.value
        and case.claim_expires_at is not None
        and case.claim_expires_at <= now
    )


def _load(conn: Connection, case_id: str) -> Any:
    row = conn.execute(select(*_SUMMARY_COLUMNS).where(Case.id == case_id)).first()
    if row is None:
        raise NotFound(f"no case {case_id!r}")
    return row


def _move(
    conn: Connection, row: Any, move: Move, actor: str, detail: dict[str, Any], **values: Any
) -> CaseStatus:
    """Apply one state-machine move with a conditional update and an audit row."""
    res = Resolution(row.resolution) if row.resolution else None
    target = transition(CaseStatus(row.status), move, res)
    now = values.pop("now", None) or utcnow()
    changed = conn.execute(
        update(Case)
        .where(Case.id == row.id, Case.status == row.status, _same_claim(row))
        .values(status=target.value, updated_at=now, **values)
    ).rowcount
    if changed != 1:
        raise Conflict(f"case {row.id} changed while you were working on it; reload and try again")
    audit.append(
        conn,
        actor,
        f"case.{move.value}",
        f"case:{row.id}",
        {"from": row.status, "to": target.value, **detail},
    )
    return target


def _same_claim(row: Any) -> Any:
    return Case.assignee.is_(None) if row.assignee is None else Case.assignee == row.assignee


def _ttl(ttl: timedelta | float | int | None) -> timedelta:
    if ttl is None:
        return DEFAULT_CLAIM_TTL
    ttl = ttl if isinstance(ttl, timedelta) else timedelta(seconds=float(ttl))
    if not timedelta(seconds=1) <= ttl <= timedelta(hours=24):
        raise ValidationFailed("ttl: between 1 second and 24 hours")
    return ttl


def _expire_in(conn: Connection, row: Any, now: datetime) -> Any:
    """Return a lapsed claim to the queue (inside the caller's transaction); the fresh row."""
    if _lapsed(row, now):
        _move(
            conn,
            row,
            Move.EXPIRE,
            "system",
            {"claimed_by": row.assignee, "expired_at": row.claim_expires_at.isoformat()},
            assignee=None,
            claim_expires_at=None,
            now=now,
        )
        return _load(conn, row.id)
    return row


def claim(
    sessions: sessionmaker[Session],
    case_id: str,
    actor: str,
    ttl: timedelta | float | None = None,
    *,
    now: datetime | None = None,
) -> CaseSummary:
    """Lock the case to ``actor`` until ``now + ttl``. Claiming one's own claim again extends it."""
    now = now or utcnow()
    expires = now + _ttl(ttl)
    with sessions.begin() as session:
        conn = session.connection()
        row = _expire_in(conn, _load(conn, case_id), now)
        if row.status == CaseStatus.CLAIMED.value and row.assignee == actor:
            conn.execute(
                update(Case).where(Case.id == case_id).values(claim_expires_at=expires, updated_at=now)
            )
            audit.append(conn, actor, "case.claim_extend", f"case:{case_id}", {"until": expires.isoformat()})
        elif row.status == CaseStatus.CLAIMED.value:
            raise Conflict(
                f"case {case_id} is claimed by {row.assignee} until {row.claim_expires_at:%Y-%m-%d %H:%M} UTC"
            )
        else:
            _move(
                conn,
                row,
                Move.CLAIM,
                actor,
                {"until": expires.isoformat()},
                assignee=actor,
                claim_expires_at=expires,
                now=now,
            )
        return _summary(_load(conn, case_id))


def release(
    sessions: sessionmaker[Session],
    case_id: str,
    actor: str,
    *,
    force: bool = False,
    now: datetime | None = None,
) -> CaseSummary:
    """Give the case back to the queue. Only the claimant may, unless ``force`` (senior staff)."""
    now = now or utcnow()
    with sessions.begin() as session:
        conn = session.connection()
        row = _expire_in(conn, _load(conn, case_id), now)
        if row.status == CaseStatus.CLAIMED.value and row.assignee != actor and not force:
            raise Conflict(f"case {case_id} is claimed by {row.assignee}; only they can release it")
        _move(
            conn,
            row,
            Move.RELEASE,
            actor,
            {"claimed_by": row.assignee},
            assignee=None,
            claim_expires_at=None,
            now=now,
        )
        return _summary(_load(conn, case_id))


def release_expired(
    sessions: sessionmaker[Session], *, case_id: str | None = None, now: datetime | None = None
) -> int:
    """Return every lapsed claim (or just ``case_id``'s) to its queue; how many were."""
    now = now or utcnow()
    cond = and_(Case.status == CaseStatus.CLAIMED.value, Case.claim_expires_at <= now)
    if case_id is not None:
        cond = and_(cond, Case.id == case_id)
    with sessions() as session:
        ids = list(session.scalars(select(Case.id).where(cond).limit(1000)))
    n = 0
    for cid in ids:
        with sessions.begin() as session:
            conn = session.connection()
            row = _load(conn, cid)
            if _lapsed(row, now):
                try:
                    _expire_in(conn, row, now)
                    n += 1
                except Conflict:  # someone claimed or resolved it in between: nothing to do
                    pass
    return n


@dataclass(frozen=True)
class ActionRequest:
    type: str
    target: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)


def _action_requests(actions: Iterable[str | dict[str, Any] | ActionRequest] | None) -> list[ActionRequest]:
    out = []
    for a in actions or ():
        if isinstance(a, ActionRequest):
            req = a
        elif isinstance(a, str):
            req = ActionRequest(a)
        elif isinstance(a, dict):
            target = a.get("target")
            if target is not None and (
                not isinstance(target, str) or not target.strip() or len(target) > 200
            ):
                raise ValidationFailed("actions[].target: a non-empty string of at most 200 characters")
            req = ActionRequest(str(a.get("type", "")), target, dict(a.get("payload") or {}))
        else:
            raise ValidationFailed("actions: a list of action names or {type, target} objects")
        statements.action_type(req.type)  # unknown type → 422
        out.append(req)
    if len(out) > 20:
        raise ValidationFailed("actions: at most 20 per resolution")
    return out


def _default_targets(conn: Connection, case: Any, target_kind: str) -> list[str]:
    """Where an action lands when the moderator named no target: from the case's events."""
    if target_kind == "account":
        return [case.subject_id]
    if target_kind == "shop":
        return [case.shop_id or case.subject_id]
    field_name = {
        "order": "order_id",
        "review": "review_id",
        "listing": "listing_id",
        "coupon": "coupon_code",
    }[target_kind]
    payloads = conn.execute(
        select(EventRecord.payload)
        .join(Decision, Decision.event_pk == EventRecord.id)
        .join(CaseDecision, CaseDecision.decision_id == Decision.id)
        .where(CaseDecision.case_id == case.id)
    ).scalars()
    values = []
    for p in payloads:
        v = p.get(field_name)
        if v:
            v = f"{p.get('account_id')}:{v}" if target_kind == "coupon" and p.get("account_id") else str(v)
            if v not in values:
                values.append(v)
    if not values:
        raise ValidationFailed(f"this case has no {target_kind} to act on; name a target")
    return values


def _signals_of(conn: Connection, case_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(Decision.signals)
        .join(CaseDecision, CaseDecision.decision_id == Decision.id)
        .where(CaseDecision.case_id == case_id)
    ).scalars()
    return [s for signals in rows for s in signals]


def _emit_actions(
    conn: Connection,
    row: Any,
    actor: str,
    requests_: Sequence[ActionRequest],
    note: str | None,
    now: datetime,
) -> list[str]:
    ids = []
    signals = None
    case_dict = row._asdict()
    for req in requests_:
        spec = statements.action_type(req.type)
        targets = [req.target] if req.target else _default_targets(conn, row, spec.target_kind)
        for target in targets:
            statement_id = None
            if spec.restrictive:
                if signals is None:
                    signals = _signals_of(conn, row.id)
                statement_id = new_id("sor")
                body = statements.build(
                    statement_id=statement_id,
                    action=spec.name,
                    target=target,
                    case=case_dict,
                    signals=signals,
                    resolved_by=actor,
                    resolution_note=note,
                    at=now,
                )
                conn.execute(
                    insert(Statement),
                    {
                        "id": statement_id,
                        "case_id": row.id,
                        "action_type": spec.name,
                        "body": body,
                        "created_at": now,
                    },
                )
            ids.append(
                outbox.enqueue(
                    conn,
                    case_id=row.id,
                    type=spec.name,
                    target=target,
                    actor=actor,
                    payload={**req.payload, "subject_id": row.subject_id, "queue": row.queue},
                    statement_id=statement_id,
                    now=now,
                )
            )
    return ids


def _note(conn: Connection, case_id: str, actor: str, body: str | None, now: datetime) -> None:
    if body is None or not body.strip():
        return
    if len(body) > MAX_NOTE:
        raise ValidationFailed(f"note: at most {MAX_NOTE} characters")
    conn.execute(
        insert(CaseNote),
        {"case_id": case_id, "author": actor[:100], "body": body, "created_at": now},
    )


def _resolve_in(
    conn: Connection,
    row: Any,
    actor: str,
    resolution: Resolution,
    note: str | None,
    actions: list[ActionRequest],
    now: datetime,
) -> list[str]:
    if actions and resolution is not Resolution.CONFIRMED_ABUSE:
        raise ValidationFailed("actions: only a confirmed_abuse resolution acts against the subject")
    if row.status == CaseStatus.CLAIMED.value and row.assignee != actor:
        raise Conflict(f"case {row.id} is claimed by {row.assignee}; claim it before resolving")
    _note(conn, row.id, actor, note, now)
    _move(
        conn,
        row,
        Move.RESOLVE,
        actor,
        {"resolution": resolution.value, "actions": [a.type for a in actions]},
        resolution=resolution.value,
        resolved_at=now,
        resolved_by=actor,
        claim_expires_at=None,
        now=now,
    )
    return _emit_actions(conn, row, actor, actions, note, now)


def resolve(
    sessions: sessionmaker[Session],
    case_id: str,
    actor: str,
    resolution: Resolution | str,
    note: str | None = None,
    actions: Iterable[str | dict[str, Any] | ActionRequest] | None = None,
    *,
    now: datetime | None = None,
) -> CaseSummary:
    """Resolve a case ``actor`` holds the claim on; actions and their statements of reasons are
    written in the same transaction."""
    now = now or utcnow()
    resolution = _resolution(resolution)
    reqs = _action_requests(actions)
    with sessions.begin() as session:
        conn = session.connection()
        row = _expire_in(conn, _load(conn, case_id), now)
        if row.status == CaseStatus.OPEN.value:
            raise Conflict(f"cannot resolve a case that is open; claim it first (allowed: {_allowed(row)})")
        _resolve_in(conn, row, actor, resolution, note, reqs, now)
        return _summary(_load(conn, case_id))


def _allowed(row: Any) -> str:
    res = Resolution(row.resolution) if row.resolution else None
    return ", ".join(m.value for m in legal_moves(CaseStatus(row.status), res)) or "none"


def _resolution(value: Resolution | str) -> Resolution:
    try:
        return Resolution(value)
    except ValueError:
        raise ValidationFailed(f"resolution must be one of {', '.join(Resolution)}") from None


def bulk_resolve(
    sessions: sessionmaker[Session],
    case_ids: Sequence[str],
    resolution: Resolution | str,
    *,
    actor: str,
    note: str | None = None,
    actions: Iterable[str | dict[str, Any] | ActionRequest] | None = None,
    now: datetime | None = None,
) -> int:
    """Claim and resolve many cases at once, all or nothing (a senior moderator's tool).

    Each case must be open, claimed by ``actor``, or claimed with a lapsed claim; otherwise
    nothing is resolved and the Conflict names the cases in the way.
    """
    now = now or utcnow()
    resolution = _resolution(resolution)
    reqs = _action_requests(actions)
    ids = list(dict.fromkeys(case_ids))
    if not ids or len(ids) > MAX_BULK:
        raise ValidationFailed(f"case_ids: between 1 and {MAX_BULK} case ids")
    if any(r.target for r in reqs):
        raise ValidationFailed("actions: bulk actions take no target (each case's own subject is used)")
    with sessions.begin() as session:
        conn = session.connection()
        rows = []
        blocked = []
        for cid in ids:
            row = _expire_in(conn, _load(conn, cid), now)
            if row.status == CaseStatus.OPEN.value or (
                row.status == CaseStatus.CLAIMED.value and row.assignee == actor
            ):
                rows.append(row)
            else:
                who = f" by {row.assignee}" if row.status == CaseStatus.CLAIMED.value else ""
                blocked.append(f"{cid} ({row.status}{who})")
        if blocked:
            raise Conflict(f"not resolvable now: {', '.join(blocked[:20])}", cases=blocked)
        for row in rows:
            if row.status == CaseStatus.OPEN.value:
                _move(
                    conn,
                    row,
                    Move.CLAIM,
                    actor,
                    {"bulk": True},
                    assignee=actor,
                    claim_expires_at=now + DEFAULT_CLAIM_TTL,
                    now=now,
                )
                row = _load(conn, row.id)
            _resolve_in(conn, row, actor, resolution, note, reqs, now)
    return len(rows)


def reopen(
    sessions: sessionmaker[Session], case_id: str, actor: str, *, now: datetime | None = None
) -> CaseSummary:
    """A ``needs_info`` case goes back to the queue once the information is in."""
    now = now or utcnow()
    with sessions.begin() as session:
        conn = session.connection()
        row = _load(conn, case_id)
        _move(conn, row, Move.REOPEN, actor, {}, assignee=None, claim_expires_at=None, now=now)
        return _summary(_load(conn, case_id))


def appeal(
    sessions: sessionmaker[Session], case_id: str, actor: str, reason: str, *, now: datetime | None = None
) -> CaseSummary:
    """Record the subject's appeal against a confirmed-abuse resolution."""
    now = now or utcnow()
    reason = (reason or "").strip()
    if not reason or len(reason) > MAX_NOTE:
        raise ValidationFailed(f"reason: between 1 and {MAX_NOTE} characters")
    with sessions.begin() as session:
        conn = session.connection()
        row = _load(conn, case_id)
        _move(
            conn,
            row,
            Move.APPEAL,
            actor,
            {"reason": reason[:500]},
            appealed_at=now,
            appeal_reason=reason,
            now=now,
        )
        return _summary(_load(conn, case_id))


def decide_appeal(
    sessions: sessionmaker[Session],
    case_id: str,
    actor: str,
    upheld: bool,
    note: str | None = None,
    *,
    now: datetime | None = None,
) -> CaseSummary:
    """Uphold (the subject was right: every restrictive action is reversed) or reject an appeal.

    The person who resolved the case may not decide its appeal (a second pair of eyes).
    """
    now = now or utcnow()
    with sessions.begin() as session:
        conn = session.connection()
        row = _load(conn, case_id)
        if row.status == CaseStatus.APPEALED.value and row.resolved_by == actor:
            raise Conflict("the moderator who resolved a case cannot decide its appeal")
        _note(conn, case_id, actor, note, now)
        move = Move.UPHOLD_APPEAL if upheld else Move.REJECT_APPEAL
        _move(conn, row, move, actor, {}, appeal_decided_by=actor, appeal_decided_at=now, now=now)
        if upheld:
            originals = conn.execute(
                select(OutboxAction.id, OutboxAction.type, OutboxAction.target)
                .where(OutboxAction.case_id == case_id, OutboxAction.reverses.is_(None))
                .order_by(OutboxAction.created_at)
            ).all()
            for a in originals:
                spec = statements.ACTIONS.get(a.type)
                if spec is None:
                    continue
                outbox.enqueue(
                    conn,
                    case_id=case_id,
                    type=spec.reversal,
                    target=a.target,
                    actor=actor,
                    payload={"subject_id": row.subject_id, "queue": row.queue, "reason": "appeal upheld"},
                    reverses=a.id,
                    now=now,
                )
        return _summary(_load(conn, case_id))


def add_note(
    sessions: sessionmaker[Session], case_id: str, actor: str, body: str, *, now: datetime | None = None
) -> int:
    """Add a note (stored as typed; escaped where shown); returns its id."""
    now = now or utcnow()
    if not body or not body.strip():
        raise ValidationFailed("body: a note needs some text")
    if len(body) > MAX_NOTE:
        raise ValidationFailed(f"body: at most {MAX_NOTE} characters")
    with sessions.begin() as session:
        conn = session.connection()
        _load(conn, case_id)
        note_id = conn.execute(
            insert(CaseNote).returning(CaseNote.id),
            {"case_id": case_id, "author": actor[:100], "body": body, "created_at": now},
        ).scalar_one()
        audit.append(conn, actor, "case.note", f"case:{case_id}", {"note_id": note_id, "chars": len(body)})
        return int(note_id)
