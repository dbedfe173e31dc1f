"""Embeddings from a registry model that makes them (``embedding = true`` in models.toml): a GGUF
run by llama-cpp-python (loaded apart from the generating copy, with mean pooling, in a thread
of its own: one batch at a time per model, never on the event loop), or an OpenAI-compatible
server's ``/embeddings``. Vectors are L2-normalised float32, so cosine is a dot product."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import numpy.typing as npt

from engine.errors import NodeloomError
from engine.models import embedded, llama
from engine.models.errors import ModelUnavailable
from engine.models.memory import default_threads
from engine.models.registry import LlamaCppConfig, OpenAIConfig

if TYPE_CHECKING:
    from engine.models import ModelService

__all__ = ["BATCH", "Embedder", "EmbeddingsUnavailable", "Vectors"]

Vectors = npt.NDArray[np.float32]
BATCH = 32  # texts per embedding call
MESSAGE_MAX = 300


class EmbeddingsUnavailable(NodeloomError, ValueError):
    """The model named cannot make embeddings here (unknown, not marked ``embedding = true``,
    or its server or file refuses)."""


class _LlamaEmbedder:
    def __init__(self, name: str, llm: Any, executor: ThreadPoolExecutor) -> None:
        self.name = name
        self._llm = llm
        self._executor = executor

    async def embed(self, texts: list[str]) -> list[list[float]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._embed, texts)

    def _embed(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = self._llm.embed(texts, truncate=True)
        return vectors

    def close(self) -> None:
        self._executor.submit(self._llm.close)
        self._executor.shutdown(wait=True)


class Embedder:
    """Makes embeddings with the models of a `ModelService`'s registry. One per process."""

    def __init__(self, models: ModelService | None) -> None:
        self.models = models
        self._local: dict[str, _LlamaEmbedder] = {}
        self._loading = asyncio.Lock()
        self._clients: dict[str, httpx.AsyncClient] = {}

    def config(self, name: str) -> LlamaCppConfig | OpenAIConfig:
        """The registry entry of ``name``, if it makes embeddings; else `EmbeddingsUnavailable`
        saying why."""
        if self.models is None:
            raise EmbeddingsUnavailable("this server runs without models: no embeddings")
        if name not in self.models.registry:
            known = ", ".join(sorted(self.models.names)) or "none"
            raise EmbeddingsUnavailable(f"unknown embedding model {name!r} (models: {known})")
        config = self.models.registry.get(name)
        if not config.embedding:
            raise EmbeddingsUnavailable(
                f"model {name!r} does not make embeddings: set `embedding = true` in its "
                "models.toml entry for a model that does"
            )
        return config

    async def embed(self, name: str, texts: list[str]) -> Vectors:
        """One normalised vector per text (rows of a float32 matrix)."""
        config = self.config(name)
        rows: list[list[float]] = []
        for start in range(0, len(texts), BATCH):
            batch = [text or " " for text in texts[start : start + BATCH]]
            if isinstance(config, OpenAIConfig):
                rows.extend(await self._remote(name, config, batch))
            else:
                rows.extend(await (await self._loaded(name, config)).embed(batch))
        try:
            matrix = np.asarray(rows, dtype=np.float32)
        except ValueError:  # vectors of different sizes
            matrix = np.zeros((0,), dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(texts) or not matrix.shape[1]:
            raise EmbeddingsUnavailable(f"model {name!r} did not answer one vector per text")
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        normalised: Vectors = (matrix / np.where(norms == 0, 1, norms)).astype(np.float32)
        return normalised

    async def _loaded(self, name: str, config: LlamaCppConfig) -> _LlamaEmbedder:
        async with self._loading:
            if name not in self._local:
                executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"embed-{name}")
                assert self.models is not None
                path = config.file(self.models.registry.directory)
                threads = config.n_threads or self.models.threads or default_threads()
                try:
                    llm = await asyncio.wrap_future(
                        executor.submit(_load, name, config, str(path), threads)
                    )
                except BaseException:
                    executor.shutdown(wait=False)
                    raise
                self._local[name] = _LlamaEmbedder(name, llm, executor)
            return self._local[name]

    async def _remote(self, name: str, config: OpenAIConfig, texts: list[str]) -> list[list[float]]:
        client = self._clients.get(name)
        if client is None:
            assert self.models is not None
            key = self.models.environ.get(config.api_key_env or "", "") or None
            if config.api_key_env is not None and key is None:
                raise EmbeddingsUnavailable(
                    f"model {name!r}: environment variable {config.api_key_env} (the API key) "
                    "is not set"
                )
            client = self._clients[name] = httpx.AsyncClient(
                base_url=config.base_url.rstrip("/") + "/",
                headers={"Authorization": f"Bearer {key}"} if key else {},
                timeout=httpx.Timeout(config.timeout_s, connect=min(config.timeout_s, 10.0)),
            )
        try:
            response = await client.post("embeddings", json={"model": config.model, "input": texts})
        except httpx.HTTPError as exc:
            raise EmbeddingsUnavailable(
                f"model {name!r}: cannot reach {config.base_url}: {exc}"
            ) from None
        if response.status_code != 200:
            raise EmbeddingsUnavailable(
                f"model {name!r}: {config.base_url}/embeddings answered "
                f"{response.status_code}: {response.text[:MESSAGE_MAX]}"
            )
        try:
            data = sorted(response.json()["data"], key=lambda item: item["index"])
            return [_pooled(item["embedding"]) for item in data]
        except (ValueError, KeyError, TypeError):
            raise EmbeddingsUnavailable(
                f"model {name!r}: {config.base_url}/embeddings answered no embeddings"
            ) from None

    async def close(self) -> None:
        local, self._local = list(self._local.values()), {}
        for model in local:
            await asyncio.to_thread(model.close)
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


def _pooled(embedding: Any) -> list[float]:
    """A text's vector: a server that answers one vector per token (llama-cpp-python's, for a
    model without pooling) is averaged over them, as the in-process models are."""
    if embedding and isinstance(embedding[0], list):
        mean: list[float] = np.asarray(embedding, dtype=np.float32).mean(axis=0).tolist()
        return mean
    return list(embedding)


def _load(name: str, config: LlamaCppConfig, path: str, threads: int) -> Any:
    lib = llama.native()
    if embedded.is_embedded(Path(path)):
        embedded.place(Path(path))
    elif not Path(path).is_file():
        raise ModelUnavailable(f"model {name}: file {path} does not exist")
    try:
        return lib.module.Llama(
            model_path=path,
            embedding=True,
            pooling_type=lib.module.LLAMA_POOLING_TYPE_MEAN,
            n_ctx=config.n_ctx,
            n_batch=min(max(config.n_batch, config.n_ctx), 4096),
            n_ubatch=min(max(config.n_batch, config.n_ctx), 4096),
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
    except ValueError as exc:
        raise ModelUnavailable(f"model {name}: cannot load {path} for embeddings: {exc}") from None
