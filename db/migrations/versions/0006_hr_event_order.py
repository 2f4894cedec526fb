"""HR events are ordered per person: people remember the latest applied event (and the
latest that set their status); webhook events keep when they happened and why one was ignored

Rows written before this revision have no order yet: the next event for a person applies.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-14 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hr_event_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('hr_event_type', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('hr_event_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('hr_status_event_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('hr_status_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('rescinded_effective_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('rescinded_by', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('occurred_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column(
            'detail', sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default='',
        ))


def downgrade() -> None:
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.drop_column('detail')
        batch_op.drop_column('occurred_at')
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.drop_column('rescinded_by')
        batch_op.drop_column('rescinded_effective_at')
        batch_op.drop_column('hr_status_at')
        batch_op.drop_column('hr_status_event_id')
        batch_op.drop_column('hr_event_at')
        batch_op.drop_column('hr_event_type')
        batch_op.drop_column('hr_event_id')
