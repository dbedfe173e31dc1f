"""Run progress on the command line: a live table on a terminal, plain lines otherwise.

Both are event listeners subscribed to an `Execution`; the executor never knows they exist.
"""

from __future__ import annotations

import sys
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass
from types import TracebackType
from typing import ClassVar, Self, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from engine.documents.plan import Plan
from engine.execution.events import (
    AnyEvent,
    NodeCompleted,
    NodeFailed,
    NodeSkipped,
    NodeStarted,
    NodeStatus,
    NodeToken,
    RunStarted,
)
from engine.nodes.body import body_of
from engine.records import RunRecord

_TOKEN_TAIL = 60  # characters of streamed text a live row shows


def format_duration(ms: float) -> str:
    if ms < 10:
        return f"{ms:.2f} ms"
    if ms < 1000:
        return f"{ms:.1f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    minutes, seconds = divmod(ms / 1000, 60)
    return f"{int(minutes)} min {seconds:.0f} s"


class Instances:
    """How many items (or iterations) of each body node have ended, counted from the events
    of the nodes inside: an instance has ended when as many of its nodes have settled as its
    body has. Bodies inside bodies count towards their own body node only."""

    def __init__(self, plan: Plan) -> None:
        self.sizes = {
            node_id: len(node.body.nodes)
            for node_id, node in plan.nodes.items()
            if node.body is not None
        }
        self._settled: Counter[str] = Counter()
        self.ended: Counter[str] = Counter()

    def settled(self, path: str) -> str | None:
        """A node inside a body settled: the body node whose count went up, if one did."""
        instance, _, rest = path.partition("/")
        size = self.sizes.get(body_of(path))
        if "/" in rest or not size:
            return None
        self._settled[instance] += 1
        if self._settled[instance] != size:
            return None
        self.ended[body_of(path)] += 1
        return body_of(path)


def progress_text(progress: dict[str, int]) -> str:
    """A body node's progress as a line says it: ``7/10 done, 1 failed``."""
    failed = f", {progress['failed']} failed" if progress.get("failed") else ""
    return f"{progress['done']}/{progress['total']} done{failed}"


class RunDisplay(ABC):
    """An event listener that shows a run's progress; use it as a context manager. The nodes
    inside bodies are not shown one by one (a map may have thousands): their body node shows
    how many items have ended, and their failures are shown."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.run_id = ""  # known from the run.started event
        self.instances = Instances(plan)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None

    @abstractmethod
    def __call__(self, event: AnyEvent) -> None: ...

    def finish(self, result: RunRecord) -> None:  # noqa: B027 - optional hook
        """Take in the final states, which no event announces (cancelled nodes)."""


class PlainDisplay(RunDisplay):
    """One line per finished node, e.g. ``[ask] succeeded 0.4 ms``, for logs and pipes."""

    def __init__(self, plan: Plan, stream: TextIO | None = None) -> None:
        super().__init__(plan)
        self.stream = stream or sys.stderr

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def __call__(self, event: AnyEvent) -> None:
        node = getattr(event, "node", None)
        if node is not None and "/" in node:  # inside a body
            if isinstance(event, NodeFailed) and not event.will_retry:
                self._line(f"[{node}] failed: {event.error}")
            if isinstance(event, NodeCompleted | NodeSkipped | NodeFailed) and not (
                isinstance(event, NodeFailed) and event.will_retry
            ):
                self.instances.settled(node)
            return
        match event:
            case RunStarted(workflow=workflow, node_count=count, reused=reused):
                self._line(f"run {event.run_id} started: {workflow} ({count} nodes)")
                for origin, taken in reused.items():
                    for node in taken:
                        if "/" not in node:
                            self._line(f"[{node}] cached: reused from run {origin}")
            case NodeCompleted(node=node, status="cached", reason=reason):
                self._line(f"[{node}] cached: {reason}" if reason else f"[{node}] cached")
            case NodeCompleted(node=node, status=status, duration_ms=duration_ms):
                self._line(f"[{node}] {status} {format_duration(duration_ms)}")
            case NodeSkipped(node=node, reason=reason):
                self._line(f"[{node}] skipped: {reason}")
            case NodeFailed(node=node, attempt=attempt, error=error, will_retry=True):
                self._line(f"[{node}] attempt {attempt} failed, retrying: {error}")
            case NodeFailed(node=node, error=error):
                self._line(f"[{node}] failed: {error}")
            case _:
                pass

    def finish(self, result: RunRecord) -> None:
        for node_id, state in result.nodes.items():
            if "/" in node_id:
                continue
            if state.status == "cancelled" and state.started_at is not None:
                self._line(f"[{node_id}] cancelled")
            if state.progress:
                self._line(f"[{node_id}] {progress_text(state.progress)}")


@dataclass(slots=True)
class _Row:
    node_type: str
    status: NodeStatus = "pending"
    detail: str = ""
    tokens: str = ""
    duration_ms: float | None = None
    started: float | None = None  # time.monotonic() when the current attempt started
    spinner: Spinner | None = None


class LiveDisplay(RunDisplay):
    """A table redrawn in place: one row per node with its status, duration and streamed text."""

    GLYPHS: ClassVar[dict[str, tuple[str, str]]] = {
        "pending": ("·", "dim"),
        "succeeded": ("✓", "green"),
        "cached": ("↺", "cyan"),
        "skipped": ("-", "yellow"),
        "failed": ("✗", "bold red"),
        "cancelled": ("■", "magenta"),
    }

    def __init__(self, plan: Plan, console: Console | None = None) -> None:
        super().__init__(plan)
        self.console = console or Console(stderr=True)
        self._lock = threading.Lock()
        self._rows = {node_id: _Row(node.node_type.type) for node_id, node in plan.nodes.items()}
        self._live = Live(
            get_renderable=self._render,
            console=self.console,
            refresh_per_second=10,
            transient=False,
        )

    def __enter__(self) -> Self:
        self._live.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._live.stop()

    def __call__(self, event: AnyEvent) -> None:
        with self._lock:
            self.run_id = event.run_id
            self._update(event)

    def _update(self, event: AnyEvent) -> None:
        node = getattr(event, "node", None)
        if node is not None and "/" in node:  # inside a body: its body node's row counts
            final = isinstance(event, NodeCompleted | NodeSkipped) or (
                isinstance(event, NodeFailed) and not event.will_retry
            )
            body = self.instances.settled(node) if final else None
            if body is not None and body in self._rows:
                self._rows[body].detail = f"{self.instances.ended[body]} done"
            return
        match event:
            case RunStarted(reused=reused):
                for origin, taken in reused.items():
                    for node in taken:
                        if node not in self._rows:
                            continue  # inside a body taken over with it
                        row = self._rows[node]
                        row.status, row.detail = "cached", f"reused from run {origin}"
            case NodeStarted(node=node, attempt=attempt):
                row = self._rows[node]
                row.status, row.started = "running", time.monotonic()
                row.spinner = row.spinner or Spinner("dots", style="blue")
                row.detail = f"attempt {attempt}" if attempt > 1 else ""
            case NodeToken(node=node, text=text):
                row = self._rows[node]
                row.tokens = (row.tokens + text)[-4 * _TOKEN_TAIL :]
            case NodeCompleted(node=node, status=status, reason=reason, duration_ms=duration_ms):
                row = self._rows[node]
                row.status, row.duration_ms = status, duration_ms
                row.detail = reason
            case NodeSkipped(node=node, reason=reason):
                row = self._rows[node]
                row.status, row.detail = "skipped", reason
            case NodeFailed(node=node, attempt=attempt, error=error, will_retry=will_retry):
                row = self._rows[node]
                if will_retry:
                    row.detail = f"attempt {attempt} failed, retrying: {error}"
                else:
                    row.status, row.detail = "failed", error
                    if row.started is not None:
                        row.duration_ms = (time.monotonic() - row.started) * 1000
            case _:
                pass

    def finish(self, result: RunRecord) -> None:
        with self._lock:
            for node_id, state in result.nodes.items():
                row = self._rows.get(node_id)
                if row is None:
                    continue  # inside a body
                if state.status == "cancelled" and row.status in ("pending", "running"):
                    row.status = "cancelled"
                    row.detail = "cancelled" if state.started_at else ""
                if state.progress:
                    row.detail = progress_text(state.progress)

    def _render(self) -> RenderableType:
        with self._lock:
            table = Table.grid(padding=(0, 1))
            table.add_column(width=1)
            table.add_column(style="bold", no_wrap=True)
            table.add_column(style="dim", no_wrap=True)
            table.add_column(no_wrap=True)
            table.add_column(justify="right", no_wrap=True)
            table.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
            now = time.monotonic()
            for node_id, row in self._rows.items():
                table.add_row(*self._cells(node_id, row, now))
            title = Text.assemble((self.plan.workflow.name, "bold"), "  ", (self.run_id, "dim"))
            return Group(title, table)

    def _cells(self, node_id: str, row: _Row, now: float) -> tuple[RenderableType, ...]:
        if row.status == "running" and row.spinner is not None:
            glyph: RenderableType = row.spinner
            style = "blue"
        else:
            symbol, style = self.GLYPHS.get(row.status, ("?", ""))
            glyph = Text(symbol, style=style)
        if row.status == "running" and row.started is not None:
            duration = format_duration((now - row.started) * 1000)
        else:
            duration = format_duration(row.duration_ms) if row.duration_ms is not None else ""
        tokens = " ".join(row.tokens.split())
        if tokens and row.status != "failed":
            tail = tokens if len(tokens) <= _TOKEN_TAIL else "…" + tokens[-_TOKEN_TAIL:]
            detail = Text(tail, style="italic")
        else:
            detail = Text(row.detail, style="red" if row.status == "failed" else "dim")
        return glyph, node_id, row.node_type, Text(row.status, style=style), duration, detail


def make_display(plan: Plan, *, live: bool) -> RunDisplay:
    return LiveDisplay(plan) if live else PlainDisplay(plan)
