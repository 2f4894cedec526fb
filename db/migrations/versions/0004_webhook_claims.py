"""webhook events are claims written before any work: status, start token, claim time

Rows written before this revision were recorded after their work was done: they are ``done``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-09 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            'status', sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default='done'
        ))
        batch_op.add_column(sa.Column('start_token', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('claimed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.drop_column('claimed_at')
        batch_op.drop_column('start_token')
        batch_op.drop_column('status')
