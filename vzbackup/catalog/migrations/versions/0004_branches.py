"""Branches: named sets of clones from one consistent set of restore points.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('branches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=63), nullable=False),
    sa.Column('node', sa.String(length=253), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('network', sa.String(length=253), nullable=False),
    sa.Column('sanitize', sa.JSON(), nullable=False),
    sa.Column('origin', sa.String(length=253), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_branches')),
    sa.UniqueConstraint('name', name=op.f('uq_branches_name'))
    )
    op.create_table('branch_members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('branch_id', sa.Integer(), nullable=False),
    sa.Column('source_kind', sa.String(length=2), nullable=False),
    sa.Column('source_vmid', sa.Integer(), nullable=False),
    sa.Column('point_id', sa.String(length=64), nullable=False),
    sa.Column('clone_kind', sa.String(length=2), nullable=False),
    sa.Column('clone_vmid', sa.Integer(), nullable=False),
    sa.Column('hostname', sa.String(length=253), nullable=False),
    sa.Column('shipped_id', sa.String(length=64), nullable=False),
    sa.CheckConstraint("source_kind IN ('ct', 'vm')", name=op.f('ck_branch_members_source_kind')),
    sa.CheckConstraint("clone_kind IN ('ct', 'vm')", name=op.f('ck_branch_members_clone_kind')),
    sa.ForeignKeyConstraint(['branch_id'], ['branches.id'],
                            name=op.f('fk_branch_members_branch_id_branches'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_branch_members')),
    sa.UniqueConstraint('clone_vmid', name=op.f('uq_branch_members_clone_vmid'))
    )
    op.create_index(op.f('ix_branch_members_branch_id'), 'branch_members', ['branch_id'], unique=False)
    op.create_index(op.f('ix_branch_members_point_id'), 'branch_members', ['point_id'], unique=False)
    op.create_index(op.f('ix_branch_members_shipped_id'), 'branch_members', ['shipped_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_branch_members_shipped_id'), table_name='branch_members')
    op.drop_index(op.f('ix_branch_members_point_id'), table_name='branch_members')
    op.drop_index(op.f('ix_branch_members_branch_id'), table_name='branch_members')
    op.drop_table('branch_members')
    op.drop_table('branches')
