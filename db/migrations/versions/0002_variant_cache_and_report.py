"""variant cache keys, precision options, top-1 agreement, notes, p99 and stability

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 10:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

String = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    # Server defaults fill the rows written before this revision.
    op.add_column("job", sa.Column("options", sa.JSON(), nullable=False, server_default="{}"))
    op.add_column("variant", sa.Column("backend", String(length=32), nullable=False, server_default=""))
    op.add_column("variant", sa.Column("cache_key", String(length=64), nullable=False, server_default=""))
    op.add_column("variant", sa.Column("toolchain", String(length=512), nullable=False, server_default=""))
    op.add_column("variant", sa.Column("reused_from", sa.Integer(), nullable=True))
    op.add_column("variant", sa.Column("build_s", sa.Float(), nullable=False, server_default="0"))
    op.add_column("variant", sa.Column("benchmark_s", sa.Float(), nullable=False, server_default="0"))
    op.add_column("variant", sa.Column("top1_agreement", sa.Float(), nullable=True))
    op.add_column("variant", sa.Column("min_top1", sa.Float(), nullable=False, server_default="0"))
    op.add_column("variant", sa.Column("verify_samples", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("variant", sa.Column("notes", sa.JSON(), nullable=False, server_default="[]"))
    op.add_column("variant", sa.Column("details", sa.JSON(), nullable=False, server_default="{}"))
    op.create_index(op.f("ix_variant_cache_key"), "variant", ["cache_key"], unique=False)
    op.add_column("benchmarkresult", sa.Column("p99_ms", sa.Float(), nullable=False, server_default="0"))
    op.add_column(
        "benchmarkresult", sa.Column("stable", sa.Boolean(), nullable=False, server_default=sa.false())
    )


def downgrade() -> None:
    with op.batch_alter_table("benchmarkresult") as batch:
        batch.drop_column("stable")
        batch.drop_column("p99_ms")
    op.drop_index(op.f("ix_variant_cache_key"), table_name="variant")
    with op.batch_alter_table("variant") as batch:
        for column in (
            "details", "notes", "verify_samples", "min_top1", "top1_agreement",
            "benchmark_s", "build_s", "reused_from", "toolchain", "cache_key", "backend",
        ):  # fmt: skip
            batch.drop_column(column)
    with op.batch_alter_table("job") as batch:
        batch.drop_column("options")
