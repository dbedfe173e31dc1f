"""Compiled plans of stored documents (`compiled_plans`), by the key of the document, its param
overrides and the node types that compiled it: a process that reruns a run it did not execute
itself reads the plan instead of validating and compiling the document again.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "compiled_plans",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_compiled_plans")),
    )


def downgrade() -> None:
    op.drop_table("compiled_plans")
