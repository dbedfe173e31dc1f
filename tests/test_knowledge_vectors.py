"""Vector and hybrid search with real embeddings (SPEC §14): the embedded GGUF as a registry
entry with `embedding = true` through llama-cpp-python, and the same model behind a real
OpenAI-compatible server (`python -m llama_cpp.server --embedding`); a model that makes no
embeddings refused when the collection is created; an agent's `knowledge_search` tool."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from engine.knowledge.embeddings import EmbeddingsUnavailable
from engine.knowledge.service import Knowledge
from engine.models import ModelRegistry, ModelService
from engine.storage.database import Database
from tests.support.knowledge_set import DOCUMENTS, write_documents

SOME = 24  # documents embedded: enough to rank, few enough to be quick


def models_toml(embedded_model: Path, server: str | None = None) -> str:
    text = (
        f'[models.gemma-embed]\nprovider = "llama_cpp"\npath = "{embedded_model}"\n'
        "n_ctx = 512\nembedding = true\n\n"
        f'[models.gemma]\nprovider = "llama_cpp"\npath = "{embedded_model}"\nn_ctx = 512\n'
    )
    if server is not None:
        text += (
            f'\n[models.served]\nprovider = "openai"\nbase_url = "{server}"\nmodel = "gemma"\n'
            "embedding = true\n"
        )
    return text


@pytest.fixture(scope="module")
def embedding_server(
    embedded_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``python -m llama_cpp.server --embedding true`` on a free loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log_path = tmp_path_factory.mktemp("embedding-server") / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_model),
        "--host", "127.0.0.1", "--port", str(port), "--model_alias", "gemma",
        "--n_ctx", "512", "--n_threads", str(min(2, os.cpu_count() or 1)),
        "--embedding", "true", "--verbose", "False",
    ]  # fmt: skip
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited:\n{log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not answer:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.25)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
async def knowledge(
    tmp_path: Path, embedded_model: Path, embedding_server: str
) -> AsyncIterator[Knowledge]:
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    (models_dir / "models.toml").write_text(models_toml(embedded_model, embedding_server))
    models = ModelService(ModelRegistry.load(models_dir), budget=2 * 1024**3)
    database = await Database.connect(f"sqlite+aiosqlite:///{tmp_path}/k.db")
    workspace = tmp_path / "workspace"
    write_documents(workspace / "some")
    for path in sorted((workspace / "some").iterdir())[SOME:]:
        path.unlink()
    found = Knowledge(database, models, workspace=workspace)
    yield found
    await found.close()
    await models.close()
    await database.close()


def text_of(slug: str) -> str:
    return next(text for name, _, text in DOCUMENTS if name == slug)


async def test_vectors_from_the_gguf_and_from_a_server(knowledge: Knowledge) -> None:
    kept = sorted(path.stem for path in (knowledge.workspace / "some").iterdir())
    for model in ("gemma-embed", "served"):
        collection = await knowledge.create(f"by-{model}", owner_id=None, embedding_model=model)
        assert collection.dimensions == 640
        job = await knowledge.add(collection.id, ["some/*.md"], owner_id=None)
        done = await knowledge.wait(job.id)
        assert (done.status, done.progress["done"], done.progress["failed"]) == ("done", SOME, 0)
        # A document's own words find it by vector alone.
        for slug in kept[:4]:
            hits = await knowledge.search(
                collection.id, text_of(slug), owner_id=None, k=3, mode="vector"
            )
            assert hits[0].source == f"some/{slug}.md", (model, slug, hits)
            assert -1.0 <= hits[-1].score <= hits[0].score <= 1.0 + 1e-5
        hybrid = await knowledge.search(collection.id, "How do bats find insects?", owner_id=None)
        assert hybrid[0].source == "some/bats.md"
        assert len(hybrid) == 5


async def test_a_model_that_makes_no_embeddings_is_refused(knowledge: Knowledge) -> None:
    with pytest.raises(EmbeddingsUnavailable, match="'gemma' does not make embeddings"):
        await knowledge.create("plain", owner_id=None, embedding_model="gemma")
    assert await knowledge.store.collections(owner_id=None) == []
