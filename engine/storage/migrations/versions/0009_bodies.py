"""Results of the nodes inside bodies (SPEC §12): their ids are paths (``m[3]/s/llm``), longer
than a node id, and a body node's result keeps its `progress` (``{"done", "failed",
"total"}``).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

PATH_LENGTH = 1024


def upgrade() -> None:
    op.add_column("node_results", sa.Column("progress", sa.JSON(), nullable=True))
    if op.get_context().dialect.name == "postgresql":  # SQLite does not enforce the length
        op.alter_column(
            "node_results",
            "node_id",
            type_=sa.String(PATH_LENGTH),
            existing_type=sa.String(64),
            existing_nullable=False,
        )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.alter_column(
            "node_results",
            "node_id",
            type_=sa.String(64),
            existing_type=sa.String(PATH_LENGTH),
            existing_nullable=False,
        )
    with op.batch_alter_table("node_results") as batch:
        batch.drop_column("progress")
