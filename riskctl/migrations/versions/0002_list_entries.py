"""list entries

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 13:58:35.047470
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import riskctl.models

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "list_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_name", sa.String(length=16), nullable=False),
        sa.Column("entity_type", sa.String(length=16), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", riskctl.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", riskctl.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_list_entries")),
        sa.UniqueConstraint("list_name", "entity_type", "token", name=op.f("uq_list_entries_list_name")),
    )
    with op.batch_alter_table("list_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_list_entries_list_name_entity_type", ["list_name", "entity_type"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("list_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_list_entries_list_name_entity_type")

    op.drop_table("list_entries")
