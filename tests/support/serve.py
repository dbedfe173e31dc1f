"""`nodeloom serve` as a real subprocess on a free port, for tests with servers stopped and
started again or several servers on one database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.documents import ROOT
from tests.support.network import free_port


class Served:
    """One `nodeloom serve` process; ``stop()`` ends it as Ctrl-C does (or ``kill=True``)."""

    def __init__(
        self, database_url: str, folder: Path, *, name: str = "serve", test_nodes: bool = False
    ) -> None:
        """``test_nodes``: with the test node types (`sleep`, …) beside the built-in ones."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / f"{name}-{self.port}.log"
        env = {**os.environ, "NODELOOM_MODELS_DIR": str(folder / "models")}
        command = [
            sys.executable, "-m", "tests.support.serve_test_nodes" if test_nodes else "server.cli",
            "serve", "--port", str(self.port),
            "--db", database_url, "--workspace", str(folder / "workspace"),
        ]  # fmt: skip
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT
            )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.url}/api/health", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop(kill=True)
                raise RuntimeError(f"nodeloom serve did not start:\n{self.output()}")
            time.sleep(0.1)

    def get(self, path: str, **options: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=30, **options)

    def post(self, path: str, **options: Any) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", timeout=60, **options)

    def delete(self, path: str) -> httpx.Response:
        return httpx.delete(f"{self.url}{path}", timeout=30)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, *, kill: bool = False) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
