"""SQLAlchemy 2 typed models. The database is the record; Redis only accelerates.

The metadata has a naming convention so Alembic migrations are stable across SQLite and
PostgreSQL. Datetimes are stored and returned as aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in, aware UTC out, on every backend (SQLite forgets the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType}


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(24), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(s for s in self.scopes.split(",") if s)


class EventRecord(Base):
    """One event as received, with raw device/IP/card identifiers replaced by tokens."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime] = mapped_column()
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    body_hash: Mapped[str] = mapped_column(String(64))
    subject_id: Mapped[str | None] = mapped_column(String(128), index=True)
    shop_id: Mapped[str | None] = mapped_column(String(128), index=True)
    amount: Mapped[float | None] = mapped_column(Float)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)

    decision: Mapped[Decision] = relationship(back_populates="event", uselist=False)

    __table_args__ = (Index("ix_events_kind_occurred_at", "kind", "occurred_at"),)


class Decision(Base):
    """The answer for one event, with everything needed to explain and replay it."""

    __tablename__ = "decisions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_pk: Mapped[int] = mapped_column(ForeignKey("events.id"), unique=True)
    event_id: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(10))
    score: Mapped[float] = mapped_column(Float)
    degraded: Mapped[bool] = mapped_column(Boolean, default=False)
    rulepack_version: Mapped[str] = mapped_column(String(80))
    detector_versions: Mapped[dict[str, Any]] = mapped_column(JSONType)
    features: Mapped[dict[str, Any]] = mapped_column(JSONType)
    signals: Mapped[list[Any]] = mapped_column(JSONType)
    reasons: Mapped[list[Any]] = mapped_column(JSONType)
    response_body: Mapped[str] = mapped_column(Text)
    latency_us: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    event: Mapped[EventRecord] = relationship(back_populates="decision")
    hits: Mapped[list[DecisionHit]] = relationship(back_populates="decision")

    __table_args__ = (
        Index("ix_decisions_kind_created_at", "kind", "created_at"),
        # led by the time: every insert lands on the index's last leaf (migration 0006)
        Index("ix_decisions_created_at_outcome", "created_at", "outcome"),
    )


class DecisionHit(Base):
    """One live or shadow hit of a decision, kept as a row for per-rule analytics."""

    __tablename__ = "decision_hits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    decision_id: Mapped[str] = mapped_column(ForeignKey("decisions.id"), index=True)
    code: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(16))
    mode: Mapped[str] = mapped_column(String(8))
    score: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    decision: Mapped[Decision] = relationship(back_populates="hits")

    # led by the time: a check's hits land on one leaf, not one per rule code (migration 0006)
    __table_args__ = (Index("ix_decision_hits_created_at_code", "created_at", "code"),)


class ListEntry(Base):
    """One allow- or block-list entry. The database is the record; Redis serves lookups."""

    __tablename__ = "list_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_name: Mapped[str] = mapped_column(String(16))
    entity_type: Mapped[str] = mapped_column(String(16))
    token: Mapped[str] = mapped_column(String(64))
    # Shown to people: the raw value for accounts, shops and brands; a masked hint for
    # devices, IPs, cards and addresses, which are never stored raw.
    label: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(500))
    source: Mapped[str] = mapped_column(String(32), default="manual")
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (
        UniqueConstraint("list_name", "entity_type", "token"),
        Index("ix_list_entries_list_name_entity_type", "list_name", "entity_type"),
    )


class Case(Base):
    """An item in the enforcement queue: one subject's suspicious activity in one queue."""

    __tablename__ = "cases"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    queue: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(128))
    shop_id: Mapped[str | None] = mapped_column(String(128), index=True)
    status: Mapped[str] = mapped_column(String(20))
    resolution: Mapped[str | None] = mapped_column(String(20), default=None)
    priority: Mapped[float] = mapped_column(Float)
    sla_due_at: Mapped[datetime] = mapped_column()
    assignee: Mapped[str | None] = mapped_column(String(100), default=None)
    claim_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    decision_count: Mapped[int] = mapped_column(Integer, default=0)
    money_at_stake: Mapped[float] = mapped_column(Float, default=0.0)
    max_score: Mapped[float] = mapped_column(Float, default=0.0)
    source: Mapped[str] = mapped_column(String(40), default="decision")
    title: Mapped[str] = mapped_column(String(300))
    evidence: Mapped[dict[str, Any]] = mapped_column(JSONType)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    resolved_by: Mapped[str | None] = mapped_column(String(100), default=None)
    appealed_at: Mapped[datetime | None] = mapped_column(default=None)
    appeal_reason: Mapped[str | None] = mapped_column(Text, default=None)
    appeal_decided_by: Mapped[str | None] = mapped_column(String(100), default=None)
    appeal_decided_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (
        Index("ix_cases_queue_status_priority", "queue", "status", "priority"),
        Index("ix_cases_subject_id_queue", "subject_id", "queue"),
    )


class CaseDecision(Base):
    """A decision that opened or joined a case."""

    __tablename__ = "case_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    decision_id: Mapped[str] = mapped_column(ForeignKey("decisions.id"), unique=True)
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    """A person who logs in to the UI. Only an argon2id hash of the password is stored."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)


class AuditEntry(Base):
    """One row of the append-only, hash-chained audit log (see riskctl/audit.py)."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column()
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    __table_args__ = (Index("ix_audit_log_subject_seq", "subject", "seq"),)


class CaseNote(Base):
    __tablename__ = "case_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    author: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Statement(Base):
    """A DSA Art. 17 statement of reasons for one restrictive action."""

    __tablename__ = "statements"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    action_type: Mapped[str] = mapped_column(String(40))
    body: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutboxAction(Base):
    """An enforcement action bound for the marketplace, written in the transaction that
    decided it and delivered at least once by the outbox worker (riskctl/outbox.py)."""

    __tablename__ = "actions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # also the Idempotency-Key
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    type: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    statement_id: Mapped[str | None] = mapped_column(ForeignKey("statements.id"), default=None)
    reverses: Mapped[str | None] = mapped_column(String(40), default=None)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (Index("ix_actions_status_next_attempt_at", "status", "next_attempt_at"),)


# -- reputation, brands, complaints, strikes (issue 6) -----------------------------------
class ReputationScore(Base):
    """The current Beta evidence of one subject, decayed to ``updated_at`` (prior excluded).

    A cache of its events (``reputation_events``): replaying them gives the same numbers.
    """

    __tablename__ = "reputation_scores"

    subject_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    subject_key: Mapped[str] = mapped_column(String(64), primary_key=True)  # keyed-hash token
    alpha: Mapped[float] = mapped_column(Float, default=0.0)
    beta: Mapped[float] = mapped_column(Float, default=0.0)
    events: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReputationEvent(Base):
    """One thing that moved a score: the history that explains it."""

    __tablename__ = "reputation_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject_type: Mapped[str] = mapped_column(String(16))
    subject_key: Mapped[str] = mapped_column(String(64))
    delta_alpha: Mapped[float] = mapped_column(Float, default=0.0)
    delta_beta: Mapped[float] = mapped_column(Float, default=0.0)
    reason: Mapped[str] = mapped_column(String(64))
    ref: Mapped[str] = mapped_column(String(200), index=True)
    actor: Mapped[str] = mapped_column(String(100))
    reverses: Mapped[int | None] = mapped_column(Integer, default=None)
    at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_reputation_events_subject", "subject_type", "subject_key", "id"),)


class Brand(Base):
    """A rights holder's brand: what the listing matcher protects."""

    __tablename__ = "brands"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(String(100), index=True)  # the rights holder
    name: Mapped[str] = mapped_column(String(200), unique=True)
    aliases: Mapped[list[Any]] = mapped_column(JSONType)
    protected_terms: Mapped[list[Any]] = mapped_column(JSONType)
    reference_prices: Mapped[dict[str, Any]] = mapped_column(JSONType)
    image_phashes: Mapped[list[Any]] = mapped_column(JSONType)
    authorised_shops: Mapped[list[Any]] = mapped_column(JSONType)
    proof_documents: Mapped[list[Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Complaint(Base):
    """A rights holder's infringement notice over one or more listings (riskctl/complaints.py)."""

    __tablename__ = "complaints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(String(100), index=True)
    brand_id: Mapped[str | None] = mapped_column(ForeignKey("brands.id"), default=None)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    right: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    marketplace: Mapped[str] = mapped_column(String(40))
    listings: Mapped[list[Any]] = mapped_column(JSONType)
    evidence: Mapped[str] = mapped_column(Text)
    priority: Mapped[float] = mapped_column(Float, default=0.0)
    due_at: Mapped[datetime | None] = mapped_column(default=None)
    outcome: Mapped[str | None] = mapped_column(String(20), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (Index("ix_complaints_status_due_at", "status", "due_at"),)


class ComplaintEvent(Base):
    """One step of a complaint's workflow, as the rights holder and staff see it."""

    __tablename__ = "complaint_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    complaint_id: Mapped[str] = mapped_column(ForeignKey("complaints.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    from_status: Mapped[str] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(Text, default="")


class Strike(Base):
    """A strike against a shop (upheld complaint, confirmed abuse); it decays with time."""

    __tablename__ = "strikes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shop_id: Mapped[str] = mapped_column(String(128), index=True)
    reason: Mapped[str] = mapped_column(String(64))
    ref: Mapped[str] = mapped_column(String(200))
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    reversed_at: Mapped[datetime | None] = mapped_column(default=None)


class SellerStanding(Base):
    """Where a shop stands on the enforcement ladder (0 = good standing)."""

    __tablename__ = "seller_standing"

    shop_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    level: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
