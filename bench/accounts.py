"""Accounts: what a password sign-in costs the server, and whether a flood of wrong passwords
slows anyone else down.

    .venv/bin/python bench/accounts.py               # 5 s per flood
    .venv/bin/python bench/accounts.py --seconds 3

The server is `nodeloom serve` in a process of its own on SQLite; server times are the
`duration_ms` of its request log lines. Floods send 100 wrong sign-ins a second for a while,
(a) from one address at one user name, (b) each from another address (X-Forwarded-For, which the
server believes from a peer on its own host) at another name, so none is limited by its count
and every one costs an argon2 check. Meanwhile another user reads `/api/me` 20 times a second
with a token; its latencies are compared with the same reads without a flood.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.storage.accounts import _hasher  # noqa: E402
from tests.support.network import free_port  # noqa: E402

PASSWORD = "a long enough password"


def cli(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        input=stdin, capture_output=True, text=True, cwd=ROOT, check=True,
    )  # fmt: skip
    return done.stdout.strip().splitlines()[-1]


def quantiles(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"median {statistics.median(ordered):6.1f} ms  p95 {p95:6.1f} ms  (n={len(ordered)})"


async def reads(client: httpx.AsyncClient, token: str, seconds: float) -> list[float]:
    """`GET /api/me` 20 times a second; each one's latency."""
    took: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        response = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        took.append((time.perf_counter() - start) * 1000)
        await asyncio.sleep(max(0.0, 0.05 - (time.perf_counter() - start)))
    return took


async def flood(client: httpx.AsyncClient, seconds: float, *, kind: str) -> Counter[int]:
    """100 requests a second, without waiting for answers before sending the next: wrong
    sign-ins (`one`: one address, one name; `spread`: another of each every time), or health
    checks (`health`: what 100 requests a second cost anyway)."""
    answers: Counter[int] = Counter()

    async def attempt(number: int) -> None:
        spread = kind == "spread"
        name = f"ghost{number}" if spread else "ada"
        headers = {"X-Forwarded-For": f"10.{number // 65536 % 256}.{number // 256 % 256}."
                                      f"{number % 256}"} if spread else {}  # fmt: skip
        try:
            if kind == "health":
                response = await client.get("/api/health")
            else:
                response = await client.post(
                    "/api/auth/login",
                    json={"username": name, "password": f"wrong {number}"},
                    headers=headers,
                )
            answers[response.status_code] += 1
        except httpx.HTTPError:
            answers[0] += 1

    tasks = []
    start = time.perf_counter()
    for number in range(int(seconds * 100)):
        await asyncio.sleep(max(0.0, start + number / 100 - time.perf_counter()))
        tasks.append(asyncio.create_task(attempt(number)))
    await asyncio.gather(*tasks)
    return answers


async def sign_in_during(
    client: httpx.AsyncClient, seconds: float, answers: Counter[int]
) -> list[float]:
    took = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        response = await client.post(
            "/api/auth/login", json={"username": "carol", "password": PASSWORD}
        )
        took.append((time.perf_counter() - start) * 1000)
        answers[response.status_code] += 1
        await asyncio.sleep(0.5)
    return took


def server_times(log: Path, path: str, status: int) -> list[float]:
    found = []
    for line in log.read_text().splitlines():
        try:
            entry: dict[str, Any] = json.loads(line)
        except json.JSONDecodeError:
            continue
        ours = entry.get("event") == "request" and entry.get("path") == path
        if ours and entry.get("status") == status:
            found.append(float(entry["duration_ms"]))
    return found


async def measure(base_url: str, token: str, seconds: float, log: Path) -> None:
    limits = httpx.Limits(max_connections=400)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
        for _ in range(20):
            response = await client.post(
                "/api/auth/login", json={"username": "ada", "password": PASSWORD}
            )
            assert response.status_code == 200, response.text
        signed = server_times(log, "/api/auth/login", 200)
        print(f"password sign-in, server time:     {quantiles(signed)}")

        quiet = await reads(client, token, seconds)
        print(f"GET /api/me, no flood:              {quantiles(quiet)}")
        labels = {
            "health": "100 health checks/s",
            "one": "(a) 100 wrong sign-ins/s",
            "spread": "(b) 100 wrong sign-ins/s",
        }
        for kind, label in labels.items():
            during, answers = await asyncio.gather(
                reads(client, token, seconds), flood(client, seconds, kind=kind)
            )
            print(f"GET /api/me, {label:<24}  {quantiles(during)}")
            ratio = statistics.median(during) / statistics.median(quiet)
            print(f"  median ratio to no flood: {ratio:.2f}; the flood's answers: {dict(answers)}")
            await asyncio.sleep(1)
        carol: Counter[int] = Counter()
        logins, _ = await asyncio.gather(
            sign_in_during(client, seconds, carol), flood(client, seconds, kind="spread")
        )
        print(f"another user's sign-in during (b):  {quantiles(logins)}; answers {dict(carol)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    started = time.perf_counter()
    encoded = _hasher.hash(PASSWORD)
    hashing = [time.perf_counter() - started]
    for _ in range(9):
        started = time.perf_counter()
        _hasher.verify(encoded, PASSWORD)
        hashing.append(time.perf_counter() - started)
    print(f"argon2id check alone (in process):  {quantiles([h * 1000 for h in hashing[1:]])}")
    with tempfile.TemporaryDirectory() as folder:
        db = f"sqlite:///{folder}/nodeloom.db"
        for name in ("ada", "carol"):
            cli("users", "create", name, "--password", "--db", db, stdin=PASSWORD + "\n")
        cli("users", "create", "bob", "--db", db)
        token = cli("tokens", "create", "bob", "--db", db)
        port = free_port()
        log = Path(folder) / "server.log"
        env = {**os.environ, "NODELOOM_WORKSPACE": f"{folder}/workspace"}
        with log.open("w") as sink:
            server = subprocess.Popen(
                [sys.executable, "-m", "server.cli", "serve", "--port", str(port), "--db", db],
                cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
            try:
                base_url = f"http://127.0.0.1:{port}"
                deadline = time.monotonic() + 60
                while True:
                    try:
                        if httpx.get(f"{base_url}/api/health").status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError("the server did not start")
                    time.sleep(0.2)
                asyncio.run(measure(base_url, token, args.seconds, log))
            finally:
                server.terminate()
                server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
