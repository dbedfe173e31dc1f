"""Runs that start themselves (SPEC §16): webhooks and schedules; batches keep their status and
the process driving them, so a batch goes on after a restart and a cancelled one stays cancelled.
Batches stored before are left as they were (`done`: nothing drives them again).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 19:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("workflow_id", sa.String(length=40), nullable=False),
        sa.Column("owner_id", sa.String(length=40), nullable=True),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name=op.f("fk_webhooks_workflow_id_workflows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhooks")),
    )
    with op.batch_alter_table("webhooks") as batch:
        batch.create_index(batch.f("ix_webhooks_workflow_id"), ["workflow_id"])
        batch.create_index(batch.f("ix_webhooks_owner_id"), ["owner_id"])

    op.create_table(
        "schedules",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("workflow_id", sa.String(length=40), nullable=False),
        sa.Column("owner_id", sa.String(length=40), nullable=True),
        sa.Column("cron", sa.String(length=120), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("catch_up", sa.String(length=8), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_run_id", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name=op.f("fk_schedules_workflow_id_workflows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules")),
    )
    with op.batch_alter_table("schedules") as batch:
        batch.create_index(batch.f("ix_schedules_workflow_id"), ["workflow_id"])
        batch.create_index(batch.f("ix_schedules_owner_id"), ["owner_id"])
        batch.create_index(batch.f("ix_schedules_next_run_at"), ["next_run_at"])

    with op.batch_alter_table("batches") as batch:
        batch.add_column(
            sa.Column("status", sa.String(length=16), nullable=False, server_default="done")
        )
        batch.add_column(sa.Column("driver", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batches") as batch:
        batch.drop_column("heartbeat_at")
        batch.drop_column("driver")
        batch.drop_column("status")
    with op.batch_alter_table("schedules") as batch:
        batch.drop_index(batch.f("ix_schedules_next_run_at"))
        batch.drop_index(batch.f("ix_schedules_owner_id"))
        batch.drop_index(batch.f("ix_schedules_workflow_id"))
    op.drop_table("schedules")
    with op.batch_alter_table("webhooks") as batch:
        batch.drop_index(batch.f("ix_webhooks_owner_id"))
        batch.drop_index(batch.f("ix_webhooks_workflow_id"))
    op.drop_table("webhooks")
