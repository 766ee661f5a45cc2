"""cases

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 14:35:59.400068
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import riskctl.models

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('cases',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('queue', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('subject_id', sa.String(length=128), nullable=False),
    sa.Column('shop_id', sa.String(length=128), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('resolution', sa.String(length=20), nullable=True),
    sa.Column('priority', sa.Float(), nullable=False),
    sa.Column('sla_due_at', riskctl.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('assignee', sa.String(length=100), nullable=True),
    sa.Column('claim_expires_at', riskctl.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('decision_count', sa.Integer(), nullable=False),
    sa.Column('money_at_stake', sa.Float(), nullable=False),
    sa.Column('max_score', sa.Float(), nullable=False),
    sa.Column('source', sa.String(length=40), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('evidence', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('opened_at', riskctl.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', riskctl.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', riskctl.models.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cases'))
    )
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.create_index('ix_cases_queue_status_priority', ['queue', 'status', 'priority'], unique=False)
        batch_op.create_index(batch_op.f('ix_cases_shop_id'), ['shop_id'], unique=False)
        batch_op.create_index('ix_cases_subject_id_queue', ['subject_id', 'queue'], unique=False)

    op.create_table('case_decisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.String(length=40), nullable=False),
    sa.Column('decision_id', sa.String(length=40), nullable=False),
    sa.Column('added_at', riskctl.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_decisions_case_id_cases')),
    sa.ForeignKeyConstraint(['decision_id'], ['decisions.id'], name=op.f('fk_case_decisions_decision_id_decisions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_decisions')),
    sa.UniqueConstraint('decision_id', name=op.f('uq_case_decisions_decision_id'))
    )
    with op.batch_alter_table('case_decisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_decisions_case_id'), ['case_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('case_decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_decisions_case_id'))

    op.drop_table('case_decisions')
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index('ix_cases_subject_id_queue')
        batch_op.drop_index(batch_op.f('ix_cases_shop_id'))
        batch_op.drop_index('ix_cases_queue_status_priority')

    op.drop_table('cases')
