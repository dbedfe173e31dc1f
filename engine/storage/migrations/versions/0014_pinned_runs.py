"""Pinned runs (SPEC §17): a run pinned as a test case of its workflow, and when.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 20:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("pinned_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_runs_pinned_at", "runs", ["pinned_at"])


def downgrade() -> None:
    op.drop_index("ix_runs_pinned_at", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("pinned_at")
