"""verdicts (gate, robust error, accuracy, failure, task warnings) and paired speedups

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 12:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

String = sqlmodel.sql.sqltypes.AutoString
VARIANT_COLUMNS = [
    sa.Column("failure", sa.Text(), nullable=True),
    sa.Column("gate", String(length=16), nullable=False, server_default=""),
    sa.Column("policy", String(length=16), nullable=False, server_default=""),
    sa.Column("verified_on", String(length=16), nullable=False, server_default=""),
    sa.Column("mean_error", sa.Float(), nullable=False, server_default="0"),
    sa.Column("accuracy", sa.Float(), nullable=True),
    sa.Column("reference_accuracy", sa.Float(), nullable=True),
    sa.Column("max_mean_error", sa.Float(), nullable=False, server_default="0"),
    sa.Column("max_accuracy_drop", sa.Float(), nullable=False, server_default="0"),
]
BENCHMARK_COLUMNS = [
    sa.Column("baseline_p50_ms", sa.Float(), nullable=True),
    sa.Column("baseline_throughput_per_s", sa.Float(), nullable=True),
    sa.Column("speedup", sa.Float(), nullable=True),
    sa.Column("speedup_low", sa.Float(), nullable=True),
    sa.Column("speedup_high", sa.Float(), nullable=True),
    sa.Column("pairs", sa.Integer(), nullable=False, server_default="0"),
]


def upgrade() -> None:
    # Server defaults fill the rows written before this revision.
    op.add_column("task", sa.Column("warnings", sa.JSON(), nullable=False, server_default="[]"))
    for column in VARIANT_COLUMNS:
        op.add_column("variant", column)
    for column in BENCHMARK_COLUMNS:
        op.add_column("benchmarkresult", column)


def downgrade() -> None:
    for table, columns in (("benchmarkresult", BENCHMARK_COLUMNS), ("variant", VARIANT_COLUMNS)):
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.drop_column(column.name)
    with op.batch_alter_table("task") as batch:
        batch.drop_column("warnings")
