"""API throughput: start-and-wait runs of a 3-node workflow through the REST API, from several
concurrent clients for a fixed time, with the server on SQLite and on PostgreSQL.

    .venv/bin/python bench/api_throughput.py                 # 10 s per side
    .venv/bin/python bench/api_throughput.py --seconds 3     # shorter
    .venv/bin/python bench/api_throughput.py --sqlite-only   # no PostgreSQL cluster

The server is `nodeloom serve` in a process of its own (uvicorn, one worker); the clients are
in this process, on httpcore (httpx's transport, without its layers above: the clients share the
machine's 2 cores with the server, and through httpx they took 1.6 ms of CPU per run, about as
much as the server, against 1.1 ms). The baseline is the same runs started in-process with
`RunService` (no HTTP, same database kind, same concurrency, the same logging as the server):
the ratio is what HTTP and the API add. The two sides are measured in alternating rounds
(`--rounds`). PostgreSQL is a throwaway cluster (tests/support/postgres.py) with fsync on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpcore
import httpx
import msgspec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.documents.document import from_builtins  # noqa: E402
from engine.runs.service import RunService  # noqa: E402
from engine.storage.database import Database  # noqa: E402
from server.logs import configure_logging  # noqa: E402
from server.plugins import installed_registry  # noqa: E402
from tests.support import postgres  # noqa: E402

TARGET_RUNS_PER_S = 200
TARGET_RATIO = 2.0
WORKFLOW: dict[str, Any] = {
    "schema_version": 1,
    "name": "Trivial",
    "nodes": [
        {"id": "who", "type": "input", "params": {"name": "who", "schema": {"type": "string"}}},
        {"id": "say", "type": "template", "params": {"template": "Hello, {{ who }}!"}},
        {"id": "out", "type": "output", "params": {"name": "greeting"}},
    ],
    "edges": [
        {"from": "who.value", "to": "say.who"},
        {"from": "say.text", "to": "out.value"},
    ],
}


One = Callable[[int], Awaitable[None]]  # one start-and-wait run, by client-run number


class Result:
    def __init__(self, label: str, latencies: list[float], seconds: float) -> None:
        self.label = label
        self.latencies = sorted(latencies)
        self.seconds = seconds

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, fraction: float) -> float:
        if not self.latencies:
            return float("nan")
        index = min(len(self.latencies) - 1, round(fraction * (len(self.latencies) - 1)))
        return self.latencies[index] * 1000


async def drive(label: str, one: One, clients: int, seconds: float) -> Result:
    """``clients`` loops calling ``one`` back to back until ``seconds`` have passed."""
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def client(number: int) -> None:
        count = 0
        while time.perf_counter() < stop:
            started = time.perf_counter()
            await one(number * 1_000_000 + count)
            latencies.append(time.perf_counter() - started)
            count += 1

    began = time.perf_counter()
    await asyncio.gather(*(client(number) for number in range(clients)))
    return Result(label, latencies, time.perf_counter() - began)


def start_server(url: str, folder: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NODELOOM_MODELS_DIR": str(folder / "models")}
    command = [
        sys.executable,
        "-m",
        "server.cli",
        "serve",
        "--port",
        str(port),
        "--db",
        url,
        "--workspace",
        str(folder / "workspace"),
    ]
    log = (folder / "server.log").open("wb")
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)


@contextlib.asynccontextmanager
async def through_api(url: str, folder: Path, clients: int) -> AsyncIterator[One]:
    """One start-and-wait run through the API of a `nodeloom serve` of its own."""
    port = postgres._free_port()
    server = start_server(url, folder, port)
    base = f"http://127.0.0.1:{port}"
    try:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    await http.get("/api/health")
                    break
                except httpx.TransportError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"the server did not start: see {folder}/server.log"
                        ) from None
                    await asyncio.sleep(0.1)
            workflow_id = (await http.post("/api/workflows", json=WORKFLOW)).json()["id"]
        url = f"{base}/api/workflows/{workflow_id}/runs"
        async with httpcore.AsyncConnectionPool(max_connections=clients) as pool:

            async def one(number: int) -> None:
                body = msgspec.json.encode({"inputs": {"who": f"client {number}"}, "wait": True})
                headers = [("Content-Type", "application/json")]
                response = await pool.request("POST", url, headers=headers, content=body)
                if response.status != 201 or json.loads(response.content)["status"] != "succeeded":
                    raise RuntimeError(f"run failed: {response.status} {response.content!r}")

            yield one
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


@contextlib.asynccontextmanager
async def in_process(url: str) -> AsyncIterator[One]:
    """The same run started with `RunService` in this process: no HTTP."""
    database = await Database.connect(url)
    service = RunService(database, installed_registry())
    workflow = from_builtins(WORKFLOW)
    try:
        saved = await service.store.create_workflow(workflow)

        async def one(number: int) -> None:
            active = await service.start(
                workflow,
                {"who": f"client {number}"},
                workflow_id=saved.id,
                workflow_version=saved.version,
                caller_waits=True,  # as the API is told with "wait": true
            )
            record = await active.wait()
            if record.status != "succeeded":
                raise RuntimeError(f"run failed: {record.error}")

        yield one
    finally:
        await service.close()
        await database.close()


def combined(label: str, rounds: list[Result]) -> Result:
    return Result(
        label,
        [latency for result in rounds for latency in result.latencies],
        sum(result.seconds for result in rounds),
    )


def report(backend: str, api: Result, baseline: Result) -> bool:
    ratio = baseline.rate / api.rate if api.rate else float("inf")
    for result in (api, baseline):
        print(
            f"{backend:<11} {result.label:<11} {len(result.latencies):>7} {result.rate:>9.1f} "
            f"{result.percentile(0.5):>9.2f} {result.percentile(0.99):>9.2f}"
        )
    print(f"{backend:<11} overhead    {ratio:>6.2f}x in-process (target <= {TARGET_RATIO}x)")
    return ratio <= TARGET_RATIO


async def measure(backend: str, url: str, folder: Path, args: argparse.Namespace) -> bool:
    """API and in-process rounds in turn, so that a slower spell of a shared machine weighs on
    both alike; each side's rate is over all its rounds."""
    per_round = args.seconds / args.rounds
    apis: list[Result] = []
    baselines: list[Result] = []
    async with through_api(url, folder, args.clients) as api, in_process(url) as local:
        await drive("warm-up", api, args.clients, min(1.0, per_round / 4))
        await drive("warm-up", local, args.clients, min(1.0, per_round / 4))
        for _ in range(args.rounds):
            apis.append(await drive("api", api, args.clients, per_round))
            baselines.append(await drive("in-process", local, args.clients, per_round))
    ok = report(backend, combined("api", apis), combined("in-process", baselines))
    ratios = ", ".join(f"{b.rate / a.rate:.2f}x" for a, b in zip(apis, baselines, strict=True))
    print(f"{backend:<11} by round    {ratios}")
    if backend == "sqlite" and combined("api", apis).rate < TARGET_RUNS_PER_S:
        print(f"sqlite      below the target of {TARGET_RUNS_PER_S} runs/s through the API")
        ok = False
    return ok


async def main_async(args: argparse.Namespace) -> int:
    print(
        f"{args.clients} concurrent clients, {args.seconds:g} s per side in {args.rounds} "
        "alternating rounds, start-and-wait runs of input -> template -> output"
    )
    print(f"{'database':<11} {'mode':<11} {'runs':>7} {'runs/s':>9} {'p50 ms':>9} {'p99 ms':>9}")
    ok = True
    with tempfile.TemporaryDirectory(prefix="nodeloom-bench-") as tmp:
        folder = Path(tmp)
        (folder / "models").mkdir()
        ok &= await measure("sqlite", f"sqlite+aiosqlite:///{folder}/api.db", folder, args)
        if not args.sqlite_only:
            if not postgres.available():
                print("postgresql  skipped: PostgreSQL binaries not found")
            else:
                with postgres.cluster(durable=True) as cluster:
                    ok &= await measure("postgresql", cluster.create_database(), folder, args)
    print("targets met" if ok else "targets missed")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args()
    # The in-process baseline logs as the server does (JSON lines at info, to a file).
    with tempfile.NamedTemporaryFile("w", prefix="nodeloom-bench-", suffix=".log") as log:
        configure_logging(json=True, file=log)
        return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
