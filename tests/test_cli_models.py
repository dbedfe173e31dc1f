"""`nodeloom models`, and `nodeloom validate` / `run` with models: real subprocesses, the real
embedded model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.documents import ROOT


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedded_model: Path) -> None:
    """A database per test; the repository's models/ folder unless a test says otherwise."""
    monkeypatch.setenv("NODELOOM_DATABASE_URL", f"sqlite:///{tmp_path}/nodeloom.db")
    monkeypatch.delenv("NODELOOM_MODELS_DIR", raising=False)
    monkeypatch.delenv("NODELOOM_MODEL_MEMORY_BUDGET", raising=False)


def nodeloom(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


def llm_workflow(path: Path, prompt: str, **params: Any) -> Path:
    document = {
        "schema_version": 1,
        "name": "llm",
        "nodes": [
            {"id": "ask", "type": "input", "params": {"name": "ask", "default": prompt}},
            {"id": "write", "type": "llm", "params": params},
            {"id": "out", "type": "output", "params": {"name": "text"}},
        ],
        "edges": [
            {"from": "ask.value", "to": "write.prompt"},
            {"from": "write.text", "to": "out.value"},
        ],
    }
    path.write_text(json.dumps(document))
    return path


def test_models_lists_the_registry_with_availability() -> None:
    result = nodeloom("models")
    assert result.returncode == 0, result.stderr
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert lines[0] == ["model", "provider", "status", "memory", "where / why"]
    assert lines[1] == [
        "gemma-3-270m",
        "llama_cpp",
        "available",
        "805.4 MiB",
        "models/gemma-3-270m-q4_k_m.gguf",
    ]


def test_models_says_why_a_model_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedded_model: Path
) -> None:
    (tmp_path / "models.toml").write_text(
        '[models.gone]\nprovider = "llama_cpp"\npath = "gone.gguf"\n'
        f'[models.gemma]\nprovider = "llama_cpp"\npath = "{embedded_model}"\n'
    )
    monkeypatch.setenv("NODELOOM_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("NODELOOM_MODEL_MEMORY_BUDGET", "512MiB")
    result = nodeloom("models", "--json")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert listing["models_dir"] == str(tmp_path)
    assert listing["memory_budget"] == 512 * 1024**2
    models = {model["name"]: model for model in listing["models"]}
    assert models["gone"]["available"] is False
    assert models["gone"]["reason"] == f"file {tmp_path / 'gone.gguf'} does not exist"
    assert models["gemma"]["available"] is False
    assert "more than the model memory budget of 512.0 MiB" in models["gemma"]["reason"]


def test_models_lists_servers_and_a_missing_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "models.toml").write_text(
        '[models.local]\nprovider = "openai"\nbase_url = "http://127.0.0.1:8081/v1"\n'
        'model = "default"\nendpoint = "completions"\n'
        '[models.paid]\nprovider = "openai"\nbase_url = "https://api.example.com/v1"\n'
        'model = "big"\napi_key_env = "NODELOOM_TEST_PAID_KEY"\n'
    )
    monkeypatch.setenv("NODELOOM_MODELS_DIR", str(tmp_path))
    monkeypatch.delenv("NODELOOM_TEST_PAID_KEY", raising=False)
    result = nodeloom("models")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:] == [
        "local\topenai\tavailable\t-\thttp://127.0.0.1:8081/v1 (completions endpoint, model "
        "default)",
        "paid\topenai\tunavailable\t-\tenvironment variable NODELOOM_TEST_PAID_KEY (the API "
        "key) is not set",
    ]


@pytest.mark.parametrize("command", [["models"], ["run", "workflows/greeting.json"]])
def test_a_bad_registry_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    (tmp_path / "models.toml").write_text(
        '[models.tiny]\nprovider = "llama_cpp"\npath = "t.gguf"\nn_ctx = 0\n'
    )
    monkeypatch.setenv("NODELOOM_MODELS_DIR", str(tmp_path))
    result = nodeloom(*command)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr == (
        f"nodeloom: {tmp_path / 'models.toml'}: model 'tiny': n_ctx: expected `int` >= 16\n"
    )


def test_a_bad_memory_budget_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODELOOM_MODEL_MEMORY_BUDGET", "plenty")
    result = nodeloom("models")
    assert result.returncode == 1
    assert result.stderr == (
        "nodeloom: NODELOOM_MODEL_MEMORY_BUDGET: expected bytes or a size like 4GiB or 512MB, "
        "got 'plenty'\n"
    )


def test_validate_reports_an_unknown_model(tmp_path: Path) -> None:
    path = llm_workflow(tmp_path / "wf.json", "Hi", model="gpt-9")
    result = nodeloom("validate", path)
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == (
        "write: unknown model 'gpt-9' (models: gemma-3-270m) [unknown_model] "
        "(at /nodes/1/params/model)"
    )


def test_run_records_usage_and_streams_nothing_to_stdout(tmp_path: Path) -> None:
    path = llm_workflow(
        tmp_path / "wf.json",
        "Q: What is the capital of Italy?\nA:",
        temperature=0,
        max_tokens=6,
        stop=["\n"],
    )
    result = nodeloom("run", path, "--json")
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)
    write = run["nodes"]["write"]
    assert write["status"] == "succeeded"
    assert write["usage"]["prompt_tokens"] > 5
    assert 1 <= write["usage"]["completion_tokens"] <= 6
    assert write["output"]["usage"] == write["usage"]
    assert run["outputs"]["text"] == write["output"]["text"]


def test_a_model_over_the_budget_fails_the_run_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NODELOOM_MODEL_MEMORY_BUDGET", "100MB")
    result = nodeloom("run", llm_workflow(tmp_path / "wf.json", "Hi", max_tokens=4))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "[write] failed: model gemma-3-270m needs about 805.4 MiB" in result.stderr


def test_ctrl_c_stops_a_generation(tmp_path: Path) -> None:
    path = llm_workflow(tmp_path / "wf.json", "1, 2, 3,", temperature=0, max_tokens=1500)
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "run", str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        assert process.stderr is not None
        while "[ask] succeeded" not in (line := process.stderr.readline()):
            assert line, "the run ended before the llm node started"
        time.sleep(2.5)  # loading (about 1 s), then generating
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        process.kill()
    assert time.monotonic() - interrupted < 2
    assert process.returncode == 130
    assert "Traceback" not in stderr
    assert "[write] cancelled" in stderr
    assert stdout == ""
