"""a conversion task's lease: the Celery id of the delivery holding it

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-14 12:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("task", sa.Column("lease", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
    # A task running across the upgrade is held by the message the client sent: its redelivery
    # carries that Celery id and takes the task up again.
    op.execute("UPDATE task SET lease = celery_id WHERE state = 'running'")


def downgrade() -> None:
    with op.batch_alter_table("task") as batch:
        batch.drop_column("lease")
