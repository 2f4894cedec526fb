"""audit events name their subject (a person or a campaign) instead of a person_id

Campaign trails used to be written under person_id = the campaign id; they become subject
kind "campaign". Each subject has its own hash chain: unique (subject_kind, subject_id, seq).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 0001 left the (person_id, seq) constraint unnamed: PostgreSQL named it itself; on SQLite the
# table is rebuilt, and this convention names it for the rebuild.
NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _old_unique() -> str:
    if op.get_bind().dialect.name == "postgresql":
        return "audit_events_person_id_seq_key"
    return "uq_audit_events_person_id"


def upgrade() -> None:
    old_unique = _old_unique()
    with op.batch_alter_table('audit_events', schema=None, naming_convention=NAMING) as batch_op:
        batch_op.drop_constraint(old_unique, type_='unique')
        batch_op.drop_index('ix_audit_events_person_id')
        batch_op.alter_column('person_id', new_column_name='subject_id')
        batch_op.add_column(sa.Column(
            'subject_kind', sqlmodel.sql.sqltypes.AutoString(), nullable=False,
            server_default='person',
        ))
    op.execute(
        "UPDATE audit_events SET subject_kind = 'campaign' "
        "WHERE subject_id IN (SELECT id FROM campaigns)"
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.alter_column('subject_kind', server_default=None)
        batch_op.create_index('ix_audit_events_subject_id', ['subject_id'], unique=False)
        batch_op.create_unique_constraint(
            'uq_audit_chain', ['subject_kind', 'subject_id', 'seq']
        )


def downgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_constraint('uq_audit_chain', type_='unique')
        batch_op.drop_index('ix_audit_events_subject_id')
        batch_op.drop_column('subject_kind')
        batch_op.alter_column('subject_id', new_column_name='person_id')
    with op.batch_alter_table('audit_events', schema=None, naming_convention=NAMING) as batch_op:
        batch_op.create_index('ix_audit_events_person_id', ['person_id'], unique=False)
        batch_op.create_unique_constraint(_old_unique(), ['person_id', 'seq'])
