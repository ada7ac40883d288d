"""Initial schema: nodes, guests, restore points, copies, runs and run items.

Written out in full (no imports from vzbackup.catalog.models) so it never changes when
the models do. Datetimes are UTC; SQLite stores the wall time without an offset.

Revision ID: 0001
Revises: -
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('nodes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=253), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_nodes')),
    sa.UniqueConstraint('name', name=op.f('uq_nodes_name'))
    )
    op.create_table('runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('args', sa.JSON(), nullable=False),
    sa.Column('started', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.CheckConstraint("status IN ('running', 'success', 'partial', 'error', 'aborted')", name=op.f('ck_runs_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_runs'))
    )
    op.create_index(op.f('ix_runs_kind'), 'runs', ['kind'], unique=False)
    op.create_index(op.f('ix_runs_started'), 'runs', ['started'], unique=False)
    op.create_index(op.f('ix_runs_status'), 'runs', ['status'], unique=False)

    op.create_table('guests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=2), nullable=False),
    sa.Column('vmid', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=253), nullable=False),
    sa.Column('node_id', sa.Integer(), nullable=True),
    sa.Column('platform', sa.String(length=32), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('ct', 'vm')", name=op.f('ck_guests_kind')),
    sa.ForeignKeyConstraint(['node_id'], ['nodes.id'], name=op.f('fk_guests_node_id_nodes'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_guests')),
    sa.UniqueConstraint('vmid', name=op.f('uq_guests_vmid'))
    )
    op.create_index(op.f('ix_guests_node_id'), 'guests', ['node_id'], unique=False)

    op.create_table('run_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('guest', sa.String(length=253), nullable=False),
    sa.Column('node', sa.String(length=253), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('point_id', sa.String(length=64), nullable=True),
    sa.Column('bytes_in', sa.BigInteger(), nullable=False),
    sa.Column('new_bytes', sa.BigInteger(), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.Column('error', sa.String(length=64), nullable=True),
    sa.Column('exit_code', sa.Integer(), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('hint', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_run_items_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_run_items'))
    )
    op.create_index(op.f('ix_run_items_guest'), 'run_items', ['guest'], unique=False)
    op.create_index(op.f('ix_run_items_run_id'), 'run_items', ['run_id'], unique=False)

    op.create_table('restore_points',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('guest_id', sa.Integer(), nullable=False),
    sa.Column('guest_kind', sa.String(length=2), nullable=False),
    sa.Column('guest_name', sa.String(length=253), nullable=False),
    sa.Column('platform', sa.String(length=32), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('new_bytes', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('source_node', sa.String(length=253), nullable=False),
    sa.Column('labels', sa.JSON(), nullable=False),
    sa.Column('parent', sa.String(length=64), nullable=True),
    sa.CheckConstraint("guest_kind IN ('ct', 'vm')", name=op.f('ck_restore_points_guest_kind')),
    sa.ForeignKeyConstraint(['guest_id'], ['guests.id'], name=op.f('fk_restore_points_guest_id_guests'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_restore_points'))
    )
    op.create_index(op.f('ix_restore_points_created'), 'restore_points', ['created'], unique=False)
    op.create_index('ix_restore_points_guest_created', 'restore_points', ['guest_id', 'created'], unique=False)

    op.create_table('copies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('point_id', sa.String(length=64), nullable=False),
    sa.Column('repository', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('verified_level', sa.String(length=8), nullable=True),
    sa.CheckConstraint("state IN ('ok', 'missing', 'corrupt', 'unverified')", name=op.f('ck_copies_state')),
    sa.CheckConstraint("verified_level IS NULL OR verified_level IN ('quick', 'full')", name=op.f('ck_copies_verified_level')),
    sa.ForeignKeyConstraint(['point_id'], ['restore_points.id'], name=op.f('fk_copies_point_id_restore_points'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_copies')),
    sa.UniqueConstraint('point_id', 'repository', name=op.f('uq_copies_point_id_repository'))
    )
    op.create_index(op.f('ix_copies_repository'), 'copies', ['repository'], unique=False)
    op.create_index(op.f('ix_copies_state'), 'copies', ['state'], unique=False)



def downgrade() -> None:
    op.drop_index(op.f('ix_copies_state'), table_name='copies')
    op.drop_index(op.f('ix_copies_repository'), table_name='copies')

    op.drop_table('copies')
    op.drop_index('ix_restore_points_guest_created', table_name='restore_points')
    op.drop_index(op.f('ix_restore_points_created'), table_name='restore_points')

    op.drop_table('restore_points')
    op.drop_index(op.f('ix_run_items_run_id'), table_name='run_items')
    op.drop_index(op.f('ix_run_items_guest'), table_name='run_items')

    op.drop_table('run_items')
    op.drop_index(op.f('ix_guests_node_id'), table_name='guests')

    op.drop_table('guests')
    op.drop_index(op.f('ix_runs_status'), table_name='runs')
    op.drop_index(op.f('ix_runs_started'), table_name='runs')
    op.drop_index(op.f('ix_runs_kind'), table_name='runs')

    op.drop_table('runs')
    op.drop_table('nodes')
