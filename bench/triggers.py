"""Runs that start themselves: how soon a webhook call starts a run, and how soon after its
slot a schedule fires.

    .venv/bin/python bench/triggers.py                 # 300 webhook calls, 6 s of schedule
    .venv/bin/python bench/triggers.py --calls 100     # fewer calls

A real `nodeloom serve` (SQLite, a process of its own) serves a one-template workflow. A
client makes a webhook and POSTs signed bodies one after another (no `wait`): the server
answers 202 once the signature is checked, the inputs validated and the run stored and started.
Printed: the server's own handling time of those requests (from its request log) and the
client's round trip, median and p95, against the target of 10 ms (p50). Then a schedule firing
every second: for each slot, how long after it its run was stored, against the target of 1 s.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Not this folder: its mcp.py would stand for the `mcp` package.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p).resolve() != ROOT / "bench")]

from tests.support.api import GREETING  # noqa: E402
from tests.support.serve import Served  # noqa: E402

WEBHOOK_TARGET_MS = 10.0
SCHEDULE_TARGET_S = 1.0


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def log_lines(server: Served) -> list[dict[str, Any]]:
    lines = []
    for line in server.output().splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return lines


def webhooks(server: Served, calls: int) -> tuple[list[float], list[float]]:
    import httpx  # noqa: PLC0415

    workflow = server.post("/api/workflows", json=GREETING).json()
    hook = server.post(f"/api/workflows/{workflow['id']}/hooks").json()
    client_ms = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for index in range(calls + 20):
            body = json.dumps({"name": f"caller {index}"}).encode()
            headers = {"X-Nodeloom-Signature": signature(hook["secret"], body)}
            began = time.perf_counter()
            response = client.post(hook["url"], content=body, headers=headers)
            elapsed = (time.perf_counter() - began) * 1000
            assert response.status_code == 202, response.text
            if index >= 20:  # the first calls warm the caches up
                client_ms.append(elapsed)
    time.sleep(0.5)
    served = [
        float(line["duration_ms"])
        for line in log_lines(server)
        if str(line.get("path", "")).startswith("/hooks/") and "duration_ms" in line
    ][20:]
    return served, client_ms


def schedule(server: Served, seconds: float) -> list[float]:
    workflow = server.post("/api/workflows", json=GREETING).json()
    base = f"/api/workflows/{workflow['id']}/schedules"
    made = server.post(base, json={"cron": "* * * * * *"}).json()
    time.sleep(seconds)
    server.delete(f"{base}/{made['id']}")
    time.sleep(0.3)
    late = []
    for line in log_lines(server):
        if line.get("event") != "scheduled run started" or line.get("schedule_id") != made["id"]:
            continue
        run = server.get(f"/api/runs/{line['run_id']}").json()
        stored = datetime.fromisoformat(run["created_at"])
        late.append((stored - datetime.fromisoformat(line["slot"])).total_seconds())
    return late


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nodeloom-triggers-") as folder:
        root = Path(folder)
        with Served(f"sqlite:///{root}/triggers.db", root) as server:
            served, client_ms = webhooks(server, args.calls)
            late = schedule(server, args.seconds)
    p50 = statistics.median(served)
    verdict = "met" if p50 <= WEBHOOK_TARGET_MS else "MISSED"
    print(f"webhook received -> run started, {len(served)} calls (SQLite, signature checked):")
    print(
        f"  server  p50 {p50:.2f} ms  p95 {quantile(served, 0.95):.2f} ms  "
        f"(target p50 <= {WEBHOOK_TARGET_MS:.0f} ms: {verdict})"
    )
    print(
        f"  client  p50 {statistics.median(client_ms):.2f} ms  "
        f"p95 {quantile(client_ms, 0.95):.2f} ms  (round trip over loopback HTTP)"
    )
    worst = max(late) if late else float("inf")
    print(
        f"schedule every second for {args.seconds:.0f} s: {len(late)} slots fired, after the "
        f"slot by p50 {statistics.median(late) * 1000 if late else float('nan'):.0f} ms, "
        f"max {worst * 1000:.0f} ms  (target <= {SCHEDULE_TARGET_S:.0f} s: "
        f"{'met' if worst <= SCHEDULE_TARGET_S else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
