"""Checkpoints: labelled local snapshots of guests, with an expiry.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('checkpoints',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('guest_kind', sa.String(length=2), nullable=False),
    sa.Column('guest_vmid', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=40), nullable=False),
    sa.Column('node', sa.String(length=253), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("guest_kind IN ('ct', 'vm')", name=op.f('ck_checkpoints_guest_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkpoints')),
    sa.UniqueConstraint('guest_vmid', 'label', name=op.f('uq_checkpoints_guest_vmid_label'))
    )
    op.create_index(op.f('ix_checkpoints_expires'), 'checkpoints', ['expires'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_checkpoints_expires'), table_name='checkpoints')
    op.drop_table('checkpoints')
