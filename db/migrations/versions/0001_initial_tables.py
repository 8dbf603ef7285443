"""initial tables

Revision ID: 0001
Revises:
Create Date: 2026-11-21 19:30:49.766916
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("model_name", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("model_key", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("model_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("model_format", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_job_model_sha256"), ["model_sha256"], unique=False)

    op.create_table(
        "task",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("job_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("hardware", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("worker", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("celery_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("queued_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("started_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("finished_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["job.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_job_id"), ["job_id"], unique=False)

    op.create_table(
        "variant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("task_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("hardware", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("format", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("precision", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("artifact_key", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("max_abs_error", sa.Float(), nullable=False),
        sa.Column("max_rel_error", sa.Float(), nullable=False),
        sa.Column("nan_count", sa.Integer(), nullable=False),
        sa.Column("inf_count", sa.Integer(), nullable=False),
        sa.Column("atol", sa.Float(), nullable=False),
        sa.Column("rtol", sa.Float(), nullable=False),
        sa.Column("verification", sa.JSON(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["job.id"],
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["task.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("variant", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_variant_job_id"), ["job_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_variant_task_id"), ["task_id"], unique=False)

    op.create_table(
        "benchmarkresult",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("host", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("hardware", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("runtime", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("p50_ms", sa.Float(), nullable=False),
        sa.Column("p95_ms", sa.Float(), nullable=False),
        sa.Column("throughput_per_s", sa.Float(), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["variant_id"],
            ["variant.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("benchmarkresult", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_benchmarkresult_variant_id"), ["variant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("benchmarkresult", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_benchmarkresult_variant_id"))

    op.drop_table("benchmarkresult")
    with op.batch_alter_table("variant", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_variant_task_id"))
        batch_op.drop_index(batch_op.f("ix_variant_job_id"))

    op.drop_table("variant")
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_job_id"))

    op.drop_table("task")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_model_sha256"))
        batch_op.drop_index(batch_op.f("ix_job_created_at"))

    op.drop_table("job")
