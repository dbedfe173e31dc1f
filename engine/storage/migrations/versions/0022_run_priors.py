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


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("priors")
