"""Bodies on workers (SPEC §12): a body node's run (`body_runs`: its inputs and what it has
counted) and one row per instance of its body (`body_instances`: its inputs, how many of its
nodes have not settled, how it ended). Node ids of runs on workers are paths now (``m[3]/llm``),
as long as those of node results.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 15:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("node_executions") as batch:
        batch.alter_column(
            "node_id", existing_type=sa.String(length=64), type_=sa.String(length=1024)
        )
    op.create_table(
        "body_runs",
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("node_id", sa.String(length=1024), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("tally", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_body_runs_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "node_id", name=op.f("pk_body_runs")),
    )
    op.create_table(
        "body_instances",
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("prefix", sa.String(length=1024), nullable=False),
        sa.Column("node_id", sa.String(length=1024), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("unsettled", sa.Integer(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_body_instances_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "prefix", name=op.f("pk_body_instances")),
    )
    op.create_index(
        "ix_body_instances_node", "body_instances", ["run_id", "node_id", "status", "position"]
    )


def downgrade() -> None:
    op.drop_index("ix_body_instances_node", table_name="body_instances")
    op.drop_table("body_instances")
    op.drop_table("body_runs")
    with op.batch_alter_table("node_executions") as batch:
        batch.alter_column(
            "node_id", existing_type=sa.String(length=1024), type_=sa.String(length=64)
        )
