"""A run's snapshot is a stored document (`blobs`, by digest) plus its param overrides, and the
results it took over are listed per run taken from (`reused_results`): the runs row stays small,
and a rerun no longer copies its parent's document.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 23:59:00
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Any

import msgspec
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

runs = sa.table(
    "runs",
    sa.column("id", sa.String),
    sa.column("snapshot", sa.JSON),
    sa.column("reused", sa.JSON),
    sa.column("snapshot_blob", sa.String),
    sa.column("snapshot_overrides", sa.JSON),
)
blobs = sa.table(
    "blobs", sa.column("digest", sa.String), sa.column("size", sa.Integer), sa.column("data")
)
reused_results = sa.table(
    "reused_results",
    sa.column("run_id", sa.String),
    sa.column("origin_run_id", sa.String),
    sa.column("nodes", sa.JSON),
)


def upgrade() -> None:
    op.add_column("runs", sa.Column("snapshot_blob", sa.String(64), nullable=True))
    op.add_column(
        "runs", sa.Column("snapshot_overrides", sa.JSON(), nullable=False, server_default="{}")
    )
    op.create_table(
        "reused_results",
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("origin_run_id", sa.String(40), nullable=False),
        sa.Column("nodes", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_reused_results_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "origin_run_id", name=op.f("pk_reused_results")),
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # Kept out of line but not compressed: a rerun of a big workflow writes a long node
        # list and a long run.started event, and compressing them took longer than the rest of
        # its commit.
        op.execute("ALTER TABLE reused_results ALTER COLUMN nodes SET STORAGE EXTERNAL")
        op.execute("ALTER TABLE events ALTER COLUMN data SET STORAGE EXTERNAL")
    stored: set[str] = set()
    for run_id, snapshot, reused in bind.execute(
        sa.select(runs.c.id, runs.c.snapshot, runs.c.reused)
    ):
        data = msgspec.json.encode(snapshot)
        digest = hashlib.sha256(data).hexdigest()
        if (
            digest not in stored
            and bind.scalar(sa.select(blobs.c.digest).where(blobs.c.digest == digest)) is None
        ):
            bind.execute(blobs.insert().values(digest=digest, size=len(data), data=data.decode()))
        stored.add(digest)
        bind.execute(runs.update().where(runs.c.id == run_id).values(snapshot_blob=digest))
        by_origin: dict[str, list[str]] = defaultdict(list)
        for node_id, origin in (reused or {}).items():
            by_origin[origin].append(node_id)
        if by_origin:
            bind.execute(
                reused_results.insert(),
                [
                    {"run_id": run_id, "origin_run_id": origin, "nodes": nodes}
                    for origin, nodes in by_origin.items()
                ],
            )
    # Natively on both (SQLite >= 3.35): no copy of the table, whose rows others reference.
    op.execute("ALTER TABLE runs DROP COLUMN snapshot")
    op.execute("ALTER TABLE runs DROP COLUMN reused")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE events ALTER COLUMN data SET STORAGE EXTENDED")
    op.add_column("runs", sa.Column("snapshot", sa.JSON(), nullable=True))
    op.add_column("runs", sa.Column("reused", sa.JSON(), nullable=False, server_default="{}"))
    bind = op.get_bind()
    rows = bind.execute(sa.select(runs.c.id, runs.c.snapshot_blob, runs.c.snapshot_overrides))
    for run_id, digest, overrides in list(rows):
        data = bind.scalar(sa.select(blobs.c.data).where(blobs.c.digest == digest))
        document: dict[str, Any] = msgspec.json.decode(data or '{"nodes": []}')
        document["nodes"] = [
            {**node, "params": {**node.get("params", {}), **overrides[node["id"]]}}
            if node["id"] in overrides
            else node
            for node in document["nodes"]
        ]
        reused = {
            node_id: origin
            for origin, nodes in bind.execute(
                sa.select(reused_results.c.origin_run_id, reused_results.c.nodes).where(
                    reused_results.c.run_id == run_id
                )
            )
            for node_id in nodes
        }
        bind.execute(
            runs.update().where(runs.c.id == run_id).values(snapshot=document, reused=reused)
        )
    op.drop_table("reused_results")
    op.execute("ALTER TABLE runs DROP COLUMN snapshot_overrides")
    op.execute("ALTER TABLE runs DROP COLUMN snapshot_blob")
