"""Runs executed by `nodeloom worker`s: run control rows, node executions with their attempt
(the fencing token), and on PostgreSQL pgqueuer's queue in its own schema (`nodeloom_queue`).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.util import await_only

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _run_script(sql: str) -> None:
    """Run a multi-statement script in the migration's transaction (asyncpg runs a script
    given without arguments as one simple query)."""
    driver_connection = op.get_bind().connection.driver_connection
    assert driver_connection is not None  # an open asyncpg connection, within the migration
    await_only(driver_connection.execute(sql))


def upgrade() -> None:
    op.create_table(
        "dispatched_runs",
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("started", sa.Boolean(), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=False),
        sa.Column("in_flight", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("reuse_from", sa.String(length=40), nullable=True),
        sa.Column("force", sa.JSON(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_dispatched_runs_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_dispatched_runs")),
    )
    op.create_table(
        "node_executions",
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("node_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("waiting_on", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=255), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_node_executions_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "node_id", name=op.f("pk_node_executions")),
    )
    op.create_index(
        "ix_node_executions_status_updated", "node_executions", ["status", "updated_at"]
    )
    if op.get_bind().dialect.name == "postgresql":
        from engine.distributed.pgq import install_sql  # noqa: PLC0415 - PostgreSQL only

        _run_script(install_sql())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        from engine.distributed.pgq import QUEUE_SCHEMA, uninstall_sql  # noqa: PLC0415

        _run_script(uninstall_sql())
        _run_script(f"DROP SCHEMA IF EXISTS {QUEUE_SCHEMA} CASCADE")
    op.drop_index("ix_node_executions_status_updated", table_name="node_executions")
    op.drop_table("node_executions")
    op.drop_table("dispatched_runs")
