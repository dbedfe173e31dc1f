"""What started each run (SPEC §16): `api`, `manual`, `batch:<id>`, `mcp`, … Runs stored before
were all started through the API or the command line, and read as `api`.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "runs", sa.Column("trigger", sa.String(80), nullable=False, server_default="api")
    )


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("trigger")
