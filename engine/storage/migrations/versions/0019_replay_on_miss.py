"""What a replay does on a miss (SPEC §17), stored with the run: a replay resumed after its
server stopped, or executed by workers, goes on replaying as it was started.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 21:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("replay_on_miss", sa.String(length=8), nullable=True))
    # Replays stored before: `fail` is what they were started with unless told otherwise.
    op.execute("UPDATE runs SET replay_on_miss = 'fail' WHERE replay_of IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("replay_on_miss")
