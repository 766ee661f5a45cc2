"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 13:40:29.918126
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import riskctl.models

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=24), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.String(length=200), nullable=False),
        sa.Column("created_at", riskctl.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", riskctl.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("occurred_at", riskctl.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", riskctl.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("body_hash", sa.String(length=64), nullable=False),
        sa.Column("subject_id", sa.String(length=128), nullable=True),
        sa.Column("shop_id", sa.String(length=128), nullable=True),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_events_event_id")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_kind_occurred_at", ["kind", "occurred_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_shop_id"), ["shop_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_subject_id"), ["subject_id"], unique=False)

    op.create_table(
        "decisions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("event_pk", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("degraded", sa.Boolean(), nullable=False),
        sa.Column("rulepack_version", sa.String(length=80), nullable=False),
        sa.Column(
            "detector_versions",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "features",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "signals",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "reasons",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("response_body", sa.Text(), nullable=False),
        sa.Column("latency_us", sa.Integer(), nullable=False),
        sa.Column("created_at", riskctl.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["event_pk"], ["events.id"], name=op.f("fk_decisions_event_pk_events")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
        sa.UniqueConstraint("event_id", name=op.f("uq_decisions_event_id")),
        sa.UniqueConstraint("event_pk", name=op.f("uq_decisions_event_pk")),
    )
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.create_index("ix_decisions_kind_created_at", ["kind", "created_at"], unique=False)
        batch_op.create_index("ix_decisions_outcome_created_at", ["outcome", "created_at"], unique=False)

    op.create_table(
        "decision_hits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("decision_id", sa.String(length=40), nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("created_at", riskctl.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["decision_id"], ["decisions.id"], name=op.f("fk_decision_hits_decision_id_decisions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decision_hits")),
    )
    with op.batch_alter_table("decision_hits", schema=None) as batch_op:
        batch_op.create_index("ix_decision_hits_code_created_at", ["code", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_decision_hits_decision_id"), ["decision_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("decision_hits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_decision_hits_decision_id"))
        batch_op.drop_index("ix_decision_hits_code_created_at")

    op.drop_table("decision_hits")
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_decisions_outcome_created_at")
        batch_op.drop_index("ix_decisions_kind_created_at")

    op.drop_table("decisions")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_subject_id"))
        batch_op.drop_index(batch_op.f("ix_events_shop_id"))
        batch_op.drop_index("ix_events_kind_occurred_at")

    op.drop_table("events")
    op.drop_table("api_keys")
