"""batch scoring: shards, the variant's signature, cancelled jobs

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 15:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

String = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.add_column("job", sa.Column("cancelled_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    op.add_column("variant", sa.Column("signature", sa.JSON(), nullable=False, server_default="{}"))
    op.create_table(
        "shard",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("job_id", String(length=32), sa.ForeignKey("job.id"), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("stop", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease", String(length=64), nullable=True),
        sa.Column("hardware", String(length=32), nullable=True),
        sa.Column("worker", String(length=255), nullable=True),
        sa.Column("variant_id", sa.Integer(), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("sha256", String(length=64), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("finished_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.UniqueConstraint("job_id", "index"),
    )
    op.create_index("ix_shard_job_id", "shard", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_shard_job_id", table_name="shard")
    op.drop_table("shard")
    with op.batch_alter_table("variant") as batch:
        batch.drop_column("signature")
    with op.batch_alter_table("job") as batch:
        batch.drop_column("cancelled_at")
