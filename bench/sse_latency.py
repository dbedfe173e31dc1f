"""Live events: how long a `node.token` event takes from being generated to reaching an SSE client.

    .venv/bin/python bench/sse_latency.py              # 20 runs of 10 tokens
    .venv/bin/python bench/sse_latency.py --runs 5     # fewer

A server (uvicorn, SQLite, in a process of its own) runs a workflow whose middle node emits
tokens 30 ms apart, each token's text being the moment it was generated (the wall clock, shared
by both processes on this machine). A client follows each run through
`GET /api/runs/{id}/events` with httpx, from before its first token, and notes when every token
event arrives. Printed: the latency of each run's first token and of all tokens (median, p95,
max) against the target of 50 ms for the first token; and, as the baseline measured in the same
invocation, the same tokens through an in-process listener of the run service (no HTTP).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.documents.document import from_builtins  # noqa: E402
from engine.execution.events import AnyEvent, NodeToken  # noqa: E402
from engine.nodes.registry import NodeRegistry  # noqa: E402
from engine.nodes.types import NodeContext, NodeType, Port  # noqa: E402
from engine.runs.service import RunService  # noqa: E402
from engine.storage.database import Database  # noqa: E402
from server.plugins import installed_registry  # noqa: E402
from tests.support import postgres  # noqa: E402

TARGET_MS = 50.0
TOKENS = 10
WORKFLOW: dict[str, Any] = {
    "schema_version": 1,
    "name": "Clock",
    "nodes": [
        {"id": "ask", "type": "input", "params": {"name": "ask", "schema": {"type": "string"}}},
        {"id": "tell", "type": "clock", "params": {"count": TOKENS, "delay_s": 0.3}},
        {"id": "out", "type": "output", "params": {"name": "told"}},
    ],
    "edges": [{"from": "ask.value", "to": "tell.ask"}, {"from": "tell.text", "to": "out.value"}],
}


class Clock(NodeType):
    """Waits ``delay_s``, then emits ``count`` tokens 30 ms apart, each the time it left."""

    type = "clock"
    title = "Clock"
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"count": {"type": "integer"}, "delay_s": {"type": "number"}},
    }
    inputs = (Port("ask", required=False, default=""),)
    outputs = (Port("text", "string"),)

    async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
        await asyncio.sleep(self.params.get("delay_s", 0.3))
        for _ in range(self.params.get("count", TOKENS)):
            context.emit_token(f"{time.time():.6f} ")
            await asyncio.sleep(0.03)
        return {"text": "done"}


def registry() -> NodeRegistry:
    found = installed_registry()
    found.register(Clock)
    return found


def serve(port: int, url: str, folder: Path) -> None:
    """The server side: the API with the clock node, as `nodeloom serve` runs it."""
    import uvicorn  # noqa: PLC0415

    from server.app import create_app  # noqa: PLC0415
    from server.config import ServerConfig  # noqa: PLC0415

    config = ServerConfig(database_url=url, workspace=folder / "workspace", models_dir=None)
    uvicorn.run(
        create_app(config, registry=registry()),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
    )


def latencies(stamps: list[tuple[float, str]]) -> list[float]:
    """ms from each token's generation (its text) to its arrival."""
    return [(arrived - float(text)) * 1000 for arrived, text in stamps]


def start_server(url: str, folder: Path, port: int) -> subprocess.Popen[bytes]:
    log = (folder / "server.log").open("wb")
    return subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), url, str(folder)],
        cwd=ROOT,
        stdout=log,
        stderr=log,
    )


async def through_sse(url: str, folder: Path, runs: int) -> list[list[float]]:
    port = postgres._free_port()
    server = start_server(url, folder, port)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    await http.get("/api/health")
                    break
                except httpx.TransportError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        message = f"the server did not start: see {folder}/server.log"
                        raise RuntimeError(message) from None
                    await asyncio.sleep(0.1)
            workflow_id = (await http.post("/api/workflows", json=WORKFLOW)).json()["id"]
            found = []
            for _ in range(runs):
                run = (
                    await http.post(
                        f"/api/workflows/{workflow_id}/runs", json={"inputs": {"ask": "now"}}
                    )
                ).json()
                stamps: list[tuple[float, str]] = []
                async with http.stream("GET", f"/api/runs/{run['id']}/events") as response:
                    async for line in response.aiter_lines():
                        if line.startswith("data: "):
                            data = json.loads(line[6:])
                            if data["type"] == "node.token":
                                stamps.append((time.time(), data["data"]["text"]))
                found.append(latencies(stamps))
            return found
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


async def in_process(url: str, runs: int) -> list[list[float]]:
    database = await Database.connect(url)
    service = RunService(database, registry())
    workflow = from_builtins(WORKFLOW)
    found = []
    try:
        for _ in range(runs):
            stamps: list[tuple[float, str]] = []

            def listen(event: AnyEvent, into: list[tuple[float, str]] = stamps) -> None:
                if isinstance(event, NodeToken):
                    into.append((time.time(), event.text))

            await (await service.start(workflow, {"ask": "now"}, listeners=[listen])).wait()
            found.append(latencies(stamps))
    finally:
        await service.close()
        await database.close()
    return found


def summary(label: str, runs: list[list[float]]) -> float:
    firsts = sorted(run[0] for run in runs if run)
    every = sorted(value for run in runs for value in run)

    def line(name: str, values: list[float]) -> str:
        p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
        return (
            f"{name} median {statistics.median(values):6.2f}  p95 {p95:6.2f}  "
            f"max {max(values):6.2f} ms"
        )

    print(f"{label:<11} {line('first token', firsts)}")
    print(f"{'':<11} {line('all tokens ', every)}  ({len(every)} tokens)")
    return statistics.median(firsts)


async def main(runs: int) -> int:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{folder}/sse.db"
        sse = await through_sse(url, Path(folder), runs)
        baseline = await in_process(url, runs)
    print(f"{runs} runs of {TOKENS} tokens, 30 ms apart; server on SQLite")
    first = summary("sse", sse)
    summary("in-process", baseline)
    met = first <= TARGET_MS
    print(f"first token over SSE: median {first:.2f} ms (target <= {TARGET_MS:g} ms)")
    return 0 if met else 1


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), sys.argv[3], Path(sys.argv[4]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs to follow")
    sys.exit(asyncio.run(main(parser.parse_args().runs)))
