"""What a rerun of a finished run may take over, stored with the run's end as one JSON value
(engine/storage/priors.py): a rerun of a run not in memory reads it instead of a row per node.
Runs stored before have none, and their reruns read their rows as before.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-08 00:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("priors", sa.Text(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        # Kept out of line but not compressed: written once per run, read whole by reruns,
        # and compressing a thousand results' keys and digests costs more than it saves.
        op.execute("ALTER TABLE runs ALTER COLUMN priors SET STORAGE EXTERNAL")


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("priors")
