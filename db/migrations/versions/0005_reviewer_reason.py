"""campaign items say why their reviewer reviews them (reviewer_reason)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 21:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('campaign_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            'reviewer_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=False,
            server_default='',
        ))


def downgrade() -> None:
    with op.batch_alter_table('campaign_items', schema=None) as batch_op:
        batch_op.drop_column('reviewer_reason')
