"""`nodeloom serve` for real: a subprocess on a free port answering HTTP, logging JSON lines with
the request id when stderr is not a terminal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.api import GREETING
from tests.support.network import free_port


def test_serve_answers_and_logs_json(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "NODELOOM_MODELS_DIR": str(tmp_path / "models")}
    command = [
        sys.executable,
        "-m",
        "server.cli",
        "serve",
        "--port",
        str(port),
        "--db",
        f"sqlite:///{tmp_path}/serve.db",
        "--workspace",
        str(tmp_path / "ws"),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"{url}/api/health", headers={"X-Request-ID": "probe-1"})
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read().decode()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        assert health.status_code == 200
        assert health.json()["database"]["ok"] is True
        assert health.headers["x-request-id"] == "probe-1"
        created = httpx.post(f"{url}/api/workflows", json=GREETING)
        run = httpx.post(
            f"{url}/api/workflows/{created.json()['id']}/runs", json={"wait": True}
        ).json()
        assert run["outputs"] == {"greeting": "Hello, world!"}
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    probe = [line for line in lines if line.get("request_id") == "probe-1"]
    assert probe
    assert probe[0]["path"] == "/api/health"
    assert probe[0]["status"] == 200
    finished = [line for line in lines if line.get("event") == "run finished"]
    assert finished
    assert finished[0]["run_id"] == run["id"]
    assert finished[0]["workflow_id"] == created.json()["id"]
    assert finished[0]["request_id"]  # the run was started by a request


@pytest.mark.parametrize(
    ("options", "environment", "expected"),
    [
        (["--execution", "workers"], {}, "runs execute on workers only with a PostgreSQL"),
        ([], {"NODELOOM_EXECUTION": "elsewhere"}, "NODELOOM_EXECUTION must be in-process or"),
    ],
)
def test_serve_refuses_an_execution_it_cannot_do(
    tmp_path: Path, options: list[str], environment: dict[str, str], expected: str
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--db",
            f"sqlite:///{tmp_path}/x.db",
            *options,
        ],
        env={**os.environ, **environment},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("nodeloom: ")
    assert expected in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
