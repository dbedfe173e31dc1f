"""A node result's reason as a code besides its words (`node_results.reason_code`): what the
engine decides by (a node skipped because of a failure upstream, say) and what the API adds to
the words. Results stored before are given the code their words were made with.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# The words each code was written as (engine/execution/reasons.py), for the rows stored before.
_CODES = (
    ("reused", "reused from run %"),
    ("params_changed", "params changed: %"),
    ("upstream_changed", "upstream changed: %"),
    ("input_changed", "input changed: %"),
    ("forced_downstream", "forced: downstream of %"),
    ("forced", "forced%"),
    ("cache_never", "cache: never"),
    ("no_earlier_result", "no earlier result"),
    ("key_changed", "cache key changed"),
    ("upstream_failed", "upstream failed: %"),
    ("upstream_skipped", "upstream skipped: %"),
    ("sources_skipped", "every source of % was skipped"),
)


def upgrade() -> None:
    with op.batch_alter_table("node_results") as batch:
        batch.add_column(sa.Column("reason_code", sa.String(32), nullable=True))
    results = sa.table("node_results", sa.column("reason", sa.Text), sa.column("reason_code"))
    for code, words in _CODES:
        op.execute(
            results.update()
            .where(results.c.reason_code.is_(None), results.c.reason.like(words))
            .values(reason_code=code)
        )


def downgrade() -> None:
    with op.batch_alter_table("node_results") as batch:
        batch.drop_column("reason_code")
