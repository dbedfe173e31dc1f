"""The tables of distributed execution: a run's control row, one row per node execution, and
the runs of body nodes with their instances."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from engine.storage.tables import Base

__all__ = ["BodyInstanceRow", "BodyRunRow", "DispatchedRunRow", "NodeExecutionRow"]


class DispatchedRunRow(Base):
    """A run executing on workers. Its row lock serialises the run's state changes, so that
    readiness, event numbers and the run's end are decided one transaction at a time."""

    __tablename__ = "dispatched_runs"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    started: Mapped[bool] = mapped_column(Boolean, default=False)
    remaining: Mapped[int] = mapped_column(Integer)  # nodes not settled yet
    in_flight: Mapped[int] = mapped_column(Integer)  # nodes queued or running
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    # A rerun: the run whose results may be taken over, the forced nodes and known reasons.
    reuse_from: Mapped[str | None] = mapped_column(String(40))
    force: Mapped[list[Any]] = mapped_column(JSON, default=list)
    reasons: Mapped[dict[str, Any]] = mapped_column(default=dict)


class NodeExecutionRow(Base):
    """One node of a dispatched run. ``attempt`` is the fencing token: it goes up each time a
    worker takes the node (or retries it), and a result is committed only with the current one."""

    __tablename__ = "node_executions"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(1024), primary_key=True)  # a path inside bodies
    # waiting | queued | running | parked | expanded (a body node, its body running) | done
    status: Mapped[str] = mapped_column(String(16))
    waiting_on: Mapped[int] = mapped_column(Integer)  # predecessors not settled yet
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime]


Index("ix_node_executions_status_updated", NodeExecutionRow.status, NodeExecutionRow.updated_at)


class BodyRunRow(Base):
    """A body node whose body runs on workers: its inputs, and what its instances have counted
    (`engine.execution.bodies.Tally`)."""

    __tablename__ = "body_runs"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(1024), primary_key=True)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    tally: Mapped[dict[str, Any]] = mapped_column(JSON)


class BodyInstanceRow(Base):
    """One instance of a body on workers, by its path prefix (``m[3]/``): its body node, its
    index, its inputs, and while it runs how many of its nodes have not settled."""

    __tablename__ = "body_instances"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(1024), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(1024))
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # pending | running | ended
    unsettled: Mapped[int] = mapped_column(Integer)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSON)


Index(
    "ix_body_instances_node",
    BodyInstanceRow.run_id,
    BodyInstanceRow.node_id,
    BodyInstanceRow.status,
    BodyInstanceRow.position,
)
