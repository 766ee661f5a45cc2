"""time-ordered indexes on the check path's tables

Every check inserts a decision and its hits, one transaction each. An index led by a value
with few distinct members (a rule code, an outcome) takes each insert to the end of that
member's range, a different leaf page per member, and every page a commit touches is written
to the WAL again: (code, created_at) on decision_hits cost 3.3 WAL pages per check, more than
the decision row. Led by the time, all inserts land on the same last leaf. The time range
queries they served still find their rows by time (then by code or outcome), and the
reputation fold's scans over decisions by creation time now have an index.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 01:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_decision_hits_code_created_at", table_name="decision_hits")
    op.create_index("ix_decision_hits_created_at_code", "decision_hits", ["created_at", "code"])
    op.drop_index("ix_decisions_outcome_created_at", table_name="decisions")
    op.create_index("ix_decisions_created_at_outcome", "decisions", ["created_at", "outcome"])


def downgrade() -> None:
    op.drop_index("ix_decisions_created_at_outcome", table_name="decisions")
    op.create_index("ix_decisions_outcome_created_at", "decisions", ["outcome", "created_at"])
    op.drop_index("ix_decision_hits_created_at_code", table_name="decision_hits")
    op.create_index("ix_decision_hits_code_created_at", "decision_hits", ["code", "created_at"])
