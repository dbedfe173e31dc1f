"""compose.yaml is a valid Compose file: PostgreSQL, one server that queues runs, two workers."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.support.documents import ROOT


def test_compose_file_is_valid() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (scripts/system-deps installs it)")
    done = subprocess.run(
        [binary, "-f", str(ROOT / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    services = subprocess.run(
        [binary, "-f", str(ROOT / "compose.yaml"), "config", "--services"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert sorted(services) == ["postgres", "server", "worker-1", "worker-2"]
    resolved = done.stdout
    assert "NODELOOM_EXECUTION: workers" in resolved
    assert resolved.count("NODELOOM_DATABASE_URL: postgresql+asyncpg://") == 3
    assert resolved.count("- worker") == 2
    assert "database:/var/lib/postgresql/data" in resolved
    assert resolved.count("models:/app/models") == 3
