"""On PostgreSQL, `nodeloom_settle_needs_transaction()`: raised (SQLSTATE NL001) by a worker's
single-statement settle of a node when that settle would have to do more than the statement can
(queue successors, finish the run), so that the worker settles the node in a transaction instead
(engine/distributed/statements.py, SETTLE).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 12:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION nodeloom_settle_needs_transaction() RETURNS void
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'the settle of this node needs a transaction'
                    USING ERRCODE = 'NL001';
            END
            $$
            """
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION nodeloom_settle_needs_transaction()")
