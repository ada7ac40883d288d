"""Clones: the lineage of guests made by ``vzbackup clone``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('clones',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source_kind', sa.String(length=2), nullable=False),
    sa.Column('source_vmid', sa.Integer(), nullable=False),
    sa.Column('point_id', sa.String(length=64), nullable=False),
    sa.Column('clone_kind', sa.String(length=2), nullable=False),
    sa.Column('clone_vmid', sa.Integer(), nullable=False),
    sa.Column('node', sa.String(length=253), nullable=False),
    sa.Column('hostname', sa.String(length=253), nullable=False),
    sa.Column('network', sa.String(length=253), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("source_kind IN ('ct', 'vm')", name=op.f('ck_clones_source_kind')),
    sa.CheckConstraint("clone_kind IN ('ct', 'vm')", name=op.f('ck_clones_clone_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clones')),
    sa.UniqueConstraint('clone_vmid', name=op.f('uq_clones_clone_vmid'))
    )
    op.create_index(op.f('ix_clones_source_vmid'), 'clones', ['source_vmid'], unique=False)
    op.create_index(op.f('ix_clones_point_id'), 'clones', ['point_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_clones_point_id'), table_name='clones')
    op.drop_index(op.f('ix_clones_source_vmid'), table_name='clones')
    op.drop_table('clones')
