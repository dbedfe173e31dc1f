"""The model layer without generation: registry, memory budget and estimates, GGUF headers,
placing the embedded model, availability, and what validation says about models (the pool:
tests/test_model_pool.py)."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.documents.graph import analyse
from engine.models import (
    ModelConfigInvalid,
    ModelNotFound,
    ModelRegistry,
    ModelService,
    ModelUnavailable,
    embedded,
)
from engine.models.gguf import read_metadata
from engine.models.memory import estimate_gguf, memory_budget, parse_size
from engine.models.registry import (
    DEFAULT_MODEL,
    OLLAMA_BASE_URL,
    LlamaCppConfig,
    OpenAIConfig,
    models_dir,
    parse,
)
from engine.nodes.registry import NodeRegistry
from engine.nodes.types import CheckContext
from tests.support.documents import ROOT, workflow

MiB = 1024**2


def write_registry(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "models.toml").write_text(text)
    return directory


# -- the registry ----------------------------------------------------------------------------


def test_the_shipped_registry_holds_the_embedded_model() -> None:
    registry = ModelRegistry.load(ROOT / "models")
    assert DEFAULT_MODEL in registry.names
    config = registry.get(DEFAULT_MODEL)
    assert config == LlamaCppConfig(path=embedded.FILE_NAME, n_ctx=2048)


def test_without_models_toml_the_embedded_model_is_registered(tmp_path: Path) -> None:
    registry = ModelRegistry.load(tmp_path)
    assert registry.names == {DEFAULT_MODEL}
    assert registry.directory == tmp_path


def test_models_dir_comes_from_the_environment() -> None:
    assert models_dir({}) == Path("models")
    assert models_dir({"NODELOOM_MODELS_DIR": "/srv/models"}) == Path("/srv/models")


def test_both_providers_decode() -> None:
    entries = parse(
        """
        [models.small]
        provider = "llama_cpp"
        path = "small.gguf"
        n_ctx = 4096
        chat_format = "chatml"

        [models.local-server]
        provider = "openai"
        base_url = "http://127.0.0.1:8081/v1"
        model = "default"
        api_key_env = "LOCAL_SERVER_KEY"
        """
    )
    assert set(entries) == {"small", "local-server"}
    assert entries["small"].n_ctx == 4096  # type: ignore[union-attr]
    assert entries["local-server"].base_url == "http://127.0.0.1:8081/v1"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[models.tiny]\nprovider = "llama_cpp"\npath = "t.gguf"\nn_ctx = "big"\n',
            "model 'tiny': n_ctx: expected `int`, got `str`",
        ),
        (
            '[models.tiny]\nprovider = "llama_cpp"\npath = "t.gguf"\nn_ctx = 8\n',
            "model 'tiny': n_ctx: expected `int` >= 16",
        ),
        ('[models.tiny]\nprovider = "llama_cpp"\n', "model 'tiny': missing required field `path`"),
        (
            '[models.tiny]\nprovider = "llama_cpp"\npath = "t.gguf"\nctx = 1\n',
            "model 'tiny': unknown field `ctx`",
        ),
        (
            '[models.tiny]\nprovider = "vllm"\n',
            "model 'tiny': provider: unknown provider 'vllm' (llama_cpp, openai, ollama)",
        ),
        ('[models.tiny]\npath = "t.gguf"\n', "model 'tiny': field `provider` is missing"),
        ("[models.tiny\n", "not valid TOML"),
        ('[model.tiny]\nprovider = "llama_cpp"\n', "unknown top-level key 'model'"),
    ],
    ids=["type", "range", "missing", "unknown-field", "provider", "no-provider", "toml", "typo"],
)
def test_a_bad_entry_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    write_registry(tmp_path, text)
    with pytest.raises(ModelConfigInvalid) as caught:
        ModelRegistry.load(tmp_path)
    assert message in caught.value.detail
    assert str(tmp_path / "models.toml") in caught.value.detail


def test_every_bad_entry_is_reported_at_once(tmp_path: Path) -> None:
    write_registry(
        tmp_path,
        '[models.a]\nprovider = "llama_cpp"\n[models.b]\nprovider = "openai"\nbase_url = 1\n'
        'model = "m"\n[models.good]\nprovider = "llama_cpp"\npath = "g.gguf"\n',
    )
    with pytest.raises(ModelConfigInvalid) as caught:
        ModelRegistry.load(tmp_path)
    assert "model 'a': missing required field `path`" in caught.value.detail
    assert "model 'b': base_url: expected `str`, got `int`" in caught.value.detail
    assert "'good'" not in caught.value.detail


def test_unknown_model_name_lists_the_known_ones() -> None:
    with pytest.raises(ModelNotFound, match=r"unknown model 'gpt' \(models: gemma-3-270m\)"):
        ModelRegistry.load(ROOT / "models").get("gpt")


# -- memory ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4294967296", 4 * 1024**3),
        ("4GiB", 4 * 1024**3),
        ("4 gib", 4 * 1024**3),
        ("512MB", 512 * 1000**2),
        ("1.5GiB", int(1.5 * 1024**3)),
        ("300M", 300 * 1000**2),
    ],
)
def test_sizes_parse(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_memory_budget_from_the_environment() -> None:
    assert memory_budget({"NODELOOM_MODEL_MEMORY_BUDGET": "2GiB"}) == 2 * 1024**3
    assert memory_budget({}) > 0  # half the machine's memory
    for bad in ("lots", "4 GiBs", "0", "-1GB"):
        with pytest.raises(ModelConfigInvalid, match="NODELOOM_MODEL_MEMORY_BUDGET"):
            memory_budget({"NODELOOM_MODEL_MEMORY_BUDGET": bad})


def test_gguf_header_of_the_embedded_model(embedded_model: Path) -> None:
    meta = read_metadata(embedded_model)
    assert meta["general.architecture"] == "gemma3"
    assert meta["gemma3.block_count"] == 18
    assert meta["tokenizer.ggml.tokens"].length == 262_144
    assert "tokenizer.chat_template" not in meta  # a base model: plain completion


def test_estimate_is_file_plus_kv_cache_plus_compute(embedded_model: Path) -> None:
    size = embedded_model.stat().st_size
    small = estimate_gguf(embedded_model, n_ctx=2048, n_batch=512)
    large = estimate_gguf(embedded_model, n_ctx=4096, n_batch=512)
    # 18 layers x 1 KV head x (256 + 256) values x 2 bytes per cell: 36 MiB for 2048 cells,
    # as llama.cpp reports it; logits for one batch: 262144 x 512 x 4 bytes.
    assert large - small == 36 * MiB
    assert small == size + 36 * MiB + 512 * MiB + 16 * MiB


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"PK\x03\x04 not a model at all", "does not start with GGUF"),
        (b"GGUF\x03\x00\x00\x00\x01", "ends inside its header"),
        (b"GGUF\x09\x00\x00\x00" + bytes(16), "GGUF version 9 is not supported"),
    ],
    ids=["empty", "zip", "truncated", "version"],
)
def test_corrupt_headers_are_named(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(ModelUnavailable, match=message) as caught:
        read_metadata(path)
    assert str(path) in caught.value.detail


# -- the embedded model ----------------------------------------------------------------------


def test_placing_the_embedded_model_is_atomic_and_verified(
    tmp_path: Path, embedded_model: Path
) -> None:
    target = tmp_path / "models" / embedded.FILE_NAME
    assert embedded.place(target) == target
    assert target.stat().st_size == embedded_model.stat().st_size
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [path.name for path in target.parent.iterdir()] == [embedded.FILE_NAME]  # no leftovers
    target.write_bytes(b"damaged")  # a wrong size is placed again
    embedded.place(target)
    assert target.stat().st_size == embedded_model.stat().st_size


# -- availability ----------------------------------------------------------------------------


def test_status_names_the_reason(tmp_path: Path, embedded_model: Path) -> None:
    (tmp_path / "junk.gguf").write_bytes(b"junk")
    (tmp_path / "gemma.gguf").symlink_to(embedded_model)
    write_registry(
        tmp_path,
        '[models.gone]\nprovider = "llama_cpp"\npath = "gone.gguf"\n'
        '[models.junk]\nprovider = "llama_cpp"\npath = "junk.gguf"\n'
        '[models.gemma]\nprovider = "llama_cpp"\npath = "gemma.gguf"\n'
        '[models.huge-ctx]\nprovider = "llama_cpp"\npath = "gemma.gguf"\nn_ctx = 131072\n'
        '[models.embedded]\nprovider = "llama_cpp"\npath = "gemma-3-270m-q4_k_m.gguf"\n'
        '[models.server]\nprovider = "openai"\nbase_url = "http://127.0.0.1:1/v1"\nmodel = "m"\n',
    )
    service = ModelService(ModelRegistry.load(tmp_path), budget=2 * 1024**3)
    statuses = {status.name: status for status in service.status()}
    assert list(statuses) == sorted(statuses)
    assert statuses["gone"].available is False
    assert statuses["gone"].reason == f"file {tmp_path / 'gone.gguf'} does not exist"
    assert statuses["junk"].available is False
    assert "is not a valid GGUF file" in (statuses["junk"].reason or "")
    assert statuses["gemma"].available is True
    assert statuses["gemma"].memory == estimate_gguf(embedded_model, 2048, 512)
    assert statuses["huge-ctx"].available is False
    assert "more than the model memory budget of 2.0 GiB" in (statuses["huge-ctx"].reason or "")
    assert statuses["embedded"].available is True  # placed on first use
    assert "placed on first use" in statuses["embedded"].note
    assert statuses["server"].available is True  # no key needed, the network is not probed
    assert statuses["server"].location == "http://127.0.0.1:1/v1"


FIRST_IMPORT_IN_THREADS = """
import threading
from engine.models import llama

barrier = threading.Barrier(8)
made = []

def prepare():
    barrier.wait()
    made.append(llama.native())

threads = [threading.Thread(target=prepare) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(len({id(lib) for lib in made}))
"""


def test_llama_cpp_is_wrapped_once_when_threads_first_need_it_together() -> None:
    # llama.cpp calls the log callback of the last wrapper made when a model is freed: a second
    # wrapper, garbage-collected, made `nodeloom run` crash at exit (the voters of an example
    # prepare the model in several threads at once).
    result = subprocess.run(
        [sys.executable, "-c", FIRST_IMPORT_IN_THREADS],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "1"


# -- validation ------------------------------------------------------------------------------


def llm_workflow(**params: Any) -> Any:
    return workflow(
        [
            {"id": "ask", "type": "input", "params": {"name": "ask", "default": "Q: 1+1?\nA:"}},
            {"id": "write", "type": "llm", "params": params},
            {"id": "out", "type": "output", "params": {"name": "text"}},
        ],
        [("ask.value", "write.prompt"), ("write.text", "out.value")],
    )


def test_unknown_model_is_a_validation_error(registry: NodeRegistry) -> None:
    names = ModelRegistry.load(ROOT / "models").names
    plan, issues = analyse(llm_workflow(model="gpt-9"), registry, CheckContext(models=names))
    assert plan is None
    assert [(i.code, i.node, i.path) for i in issues] == [
        ("unknown_model", "write", "/nodes/1/params/model")
    ]
    assert issues[0].message == "unknown model 'gpt-9' (models: gemma-3-270m)"
    # Without a model list (no registry known), names are not checked.
    assert analyse(llm_workflow(model="gpt-9"), registry)[0] is not None
    # The default model is checked too.
    _, issues = analyse(llm_workflow(), registry, CheckContext(models=frozenset({"other"})))
    assert [issue.code for issue in issues] == ["unknown_model"]


def test_invalid_response_schema_is_a_validation_error(registry: NodeRegistry) -> None:
    bad = {"type": "object", "properties": {"age": {"type": "integr"}}}
    _, issues = analyse(llm_workflow(response_schema=bad), registry)
    assert [(i.code, i.node, i.path) for i in issues] == [
        ("invalid_params", "write", "/nodes/1/params/response_schema/properties/age/type")
    ]
    assert "response_schema is not a valid JSON Schema" in issues[0].message


def test_json_port_exists_only_with_a_response_schema(registry: NodeRegistry) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    plan, _ = analyse(llm_workflow(response_schema=schema), registry)
    assert plan is not None
    assert plan.nodes["write"].outputs["json"].type == "object"
    plan, _ = analyse(llm_workflow(), registry)
    assert plan is not None
    assert set(plan.nodes["write"].outputs) == {"text", "usage"}


def test_llm_params_are_checked_against_the_schema(registry: NodeRegistry) -> None:
    _, issues = analyse(llm_workflow(temperature=5, max_tokens=0, stop=[""]), registry)
    assert sorted(issue.path or "" for issue in issues) == [
        "/nodes/1/params/max_tokens",
        "/nodes/1/params/stop",
        "/nodes/1/params/temperature",
    ]


def test_ollama_is_a_server_at_its_default_address() -> None:
    entries = parse('[models.llama]\nprovider = "ollama"\nmodel = "llama3.2"\nprice_in = 0.5\n')
    config = entries["llama"]
    assert isinstance(config, OpenAIConfig)
    assert config.base_url == OLLAMA_BASE_URL == "http://127.0.0.1:11434/v1"
    assert (config.model, config.price_in, config.price_out) == ("llama3.2", 0.5, None)
    elsewhere = parse(
        '[models.llama]\nprovider = "ollama"\nmodel = "m"\nbase_url = "http://gpu:11434/v1"\n'
    )
    assert elsewhere["llama"].base_url == "http://gpu:11434/v1"
    with pytest.raises(ModelConfigInvalid, match=r"price_out: expected `float` >= 0"):
        parse('[models.m]\nprovider = "ollama"\nmodel = "m"\nprice_out = -1\n')
