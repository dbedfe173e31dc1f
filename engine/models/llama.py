"""The ``llama_cpp`` provider: GGUF models run in-process by llama-cpp-python.

Each loaded model owns one worker thread. Loading and every generation run there, one at a time
(so one model generates for one request at a time), never on the event loop. Text is handed to
the event loop as it is produced; a cancel flag, checked between tokens, stops a generation.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import ctypes
import functools
import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec
import structlog

from engine.models.base import Completion, FinishReason, GenerationRequest, OnText
from engine.models.conversation import (
    MESSAGE_OVERHEAD,
    TRANSCRIPT_STOP,
    Message,
    fit,
    transcript,
)
from engine.models.conversation import line as transcript_line
from engine.models.errors import ModelError, ModelUnavailable
from engine.models.registry import LlamaCppConfig

__all__ = ["INSTALL_HINT", "LlamaModel", "load", "native", "unavailable_reason"]

log = structlog.get_logger("nodeloom.models")

INSTALL_HINT = (
    "pip install 'llama-cpp-python>=0.3.16,<0.4' (build it as the README says: "
    'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON '
    '-DGGML_BMI2=ON")'
)
# Sampling settings besides those a request sets: llama.cpp's defaults, no repeat penalty.
TOP_K, MIN_P, REPEAT_PENALTY = 40, 0.05, 1.0
COMPLETION, CHAT = "completion", "chat"
_GGML_LOG_WARN = 3


class _Native:
    """The imported ``llama_cpp`` module, with llama.cpp's log routed to structlog; the latest
    error lines are kept to explain a failed load."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.errors: deque[str] = deque(maxlen=8)

        @module.llama_log_callback  # type: ignore[untyped-decorator]
        def forward(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
            if level >= _GGML_LOG_WARN:
                line = text.decode("utf-8", errors="replace").strip()
                if line:
                    self.errors.append(line)
                    log.debug("llama.cpp", message=line)

        self._forward = forward  # the C library keeps only a pointer: keep the callback alive
        module.llama_log_set(forward, ctypes.c_void_p(0))

    def load_error(self) -> str:
        for line in reversed(self.errors):
            if "error loading model:" in line:
                return line.split("error loading model:", 1)[1].strip()
        return self.errors[-1] if self.errors else "llama.cpp could not load it"


_native_lock = threading.Lock()


def native() -> _Native:
    """llama-cpp-python, imported once; `ModelUnavailable` says how to install it.

    Models are prepared in several threads at once. Only one `_Native` may ever exist: llama.cpp
    keeps a pointer to the log callback of the last one made, and calls it when a model is freed;
    a second one garbage-collected would leave that pointer dangling (a crash at close)."""
    with _native_lock:
        return _import_native()


@functools.cache
def _import_native() -> _Native:
    try:
        import llama_cpp  # noqa: PLC0415 - loads a large native library: only when needed
    except (ImportError, OSError) as exc:
        raise ModelUnavailable(
            f"llama-cpp-python cannot be imported ({exc}): {INSTALL_HINT}"
        ) from None
    return _Native(llama_cpp)


def unavailable_reason() -> str | None:
    """Why the provider cannot run here, or None."""
    try:
        native()
    except ModelUnavailable as exc:
        return exc.detail
    return None


async def load(
    name: str, config: LlamaCppConfig, path: Path, *, memory: int, threads: int
) -> LlamaModel:
    """Load the GGUF at ``path`` in a new worker thread; `ModelUnavailable` when it cannot be."""
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llama-{name}")
    try:
        llm, mode = await asyncio.wrap_future(executor.submit(_load, name, config, path, threads))
    except BaseException:
        executor.shutdown(wait=False)
        raise
    return LlamaModel(
        name,
        llm,
        mode,
        executor,
        memory=memory,
        n_ctx=config.n_ctx,
        prompt_cache=config.prompt_cache,
    )


def _load(name: str, config: LlamaCppConfig, path: Path, threads: int) -> tuple[Any, str]:
    lib = native()
    started = time.perf_counter()
    lib.errors.clear()
    chat_format = config.chat_format if config.chat_format != COMPLETION else None
    try:
        llm = lib.module.Llama(
            model_path=str(path),
            n_ctx=config.n_ctx,
            n_batch=min(config.n_batch, config.n_ctx),
            n_threads=threads,
            n_threads_batch=threads,
            chat_format=chat_format,
            verbose=False,
        )
    except ValueError as exc:
        detail = lib.load_error() if "Failed to load model" in str(exc) else str(exc)
        raise ModelUnavailable(f"model {name}: cannot load {path}: {detail}") from None
    # One token through the model pages the weights in: the first request does not pay for it.
    llm.eval([llm.token_bos()])
    llm.reset()
    if config.chat_format == COMPLETION:
        mode = COMPLETION
    elif config.chat_format is not None or "tokenizer.chat_template" in llm.metadata:
        mode = CHAT
    else:
        mode = COMPLETION  # a base model: no chat template to follow
    log.info(
        "model loaded",
        model=name,
        path=str(path),
        mode=mode,
        threads=threads,
        seconds=round(time.perf_counter() - started, 3),
    )
    return llm, mode


class LlamaModel:
    """A loaded GGUF model (see the module docstring)."""

    def __init__(
        self,
        name: str,
        llm: Any,
        mode: str,
        executor: ThreadPoolExecutor,
        *,
        memory: int,
        n_ctx: int,
        prompt_cache: bool = False,
    ) -> None:
        self.name = name
        self.memory = memory
        self.mode = mode
        self.n_ctx = n_ctx
        self.prompt_cache = prompt_cache
        self._llm = llm
        self._executor = executor
        self._vocab = native().module.llama_model_get_vocab(llm.model)

    async def generate(self, request: GenerationRequest, on_text: OnText) -> Completion:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        first: float | None = None
        pieces: asyncio.Queue[str | None] = asyncio.Queue()
        cancel = threading.Event()

        def push(text: str) -> None:  # in the worker thread
            loop.call_soon_threadsafe(pieces.put_nowait, text)

        job = self._executor.submit(self._generate, request, push, cancel)
        done = asyncio.wrap_future(job)
        # Runs after every piece pushed before the job ended: the end of the stream.
        done.add_done_callback(lambda _: pieces.put_nowait(None))
        try:
            while (piece := await pieces.get()) is not None:
                if first is None:
                    first = time.perf_counter() - started
                on_text(piece)
            completion = await done
        except asyncio.CancelledError:
            cancel.set()
            if not job.cancel():  # it is running: wait the token or so it takes to stop
                with contextlib.suppress(Exception):
                    await asyncio.shield(done)
            raise
        return msgspec.structs.replace(
            completion, first_token_s=first, duration_s=time.perf_counter() - started
        )

    async def fit(self, messages: tuple[Message, ...], limit: int) -> tuple[Message, ...]:
        """``messages`` cut to ``limit`` prompt tokens of this model's tokenizer (see
        `conversation.fit`; in its worker thread, after the generations before it)."""
        return await asyncio.wrap_future(self._executor.submit(self._fit, messages, limit))

    def _fit(self, messages: tuple[Message, ...], limit: int) -> tuple[Message, ...]:
        def count(text: str) -> int:
            return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

        if self.mode == COMPLETION:  # a line each, and the BOS and "Assistant:" around them
            fixed = 1 + count("\nAssistant:")
            return fit(messages, lambda m: count(transcript_line(m) + "\n"), limit - fixed)
        sized = lambda m: count(m.content) + MESSAGE_OVERHEAD  # noqa: E731
        return fit(messages, sized, limit - MESSAGE_OVERHEAD)

    def close(self) -> None:
        """Free the model once the worker has finished what it was given, and wait for it: a
        process that exits while the worker thread still frees llama.cpp's memory can crash."""
        self._executor.submit(self._llm.close)
        self._executor.shutdown(wait=True)

    # -- in the worker thread -------------------------------------------------------------

    def _generate(
        self, request: GenerationRequest, push: Callable[[str], None], cancel: threading.Event
    ) -> Completion:
        if cancel.is_set():
            return Completion(
                text="", prompt_tokens=0, completion_tokens=0, finish_reason="cancelled"
            )
        grammar = self._grammar(request.response_schema)
        seed = request.seed if request.seed is not None else random.randrange(2**32)
        if self.mode == CHAT:
            return self._chat(request, grammar, seed, push, cancel)
        return self._complete(request, grammar, seed, push, cancel)

    def _complete(
        self,
        request: GenerationRequest,
        grammar: Any,
        seed: int,
        push: Callable[[str], None],
        cancel: threading.Event,
    ) -> Completion:
        llm = self._llm
        if request.messages:
            prompt = transcript(request.messages)
            request = msgspec.structs.replace(request, stop=(*request.stop, TRANSCRIPT_STOP))
        elif request.system:
            prompt = f"{request.system}\n\n{request.prompt}"
        else:
            prompt = request.prompt
        tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        if len(tokens) >= self.n_ctx:
            raise ModelError(
                f"the prompt is {len(tokens)} tokens, more than model {self.name} takes "
                f"(n_ctx = {self.n_ctx})"
            )
        budget = min(request.max_tokens, self.n_ctx - len(tokens))
        is_eog = native().module.llama_vocab_is_eog
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = _StopFilter(request.stop)
        text: list[str] = []
        count = 0
        finish: FinishReason = "length"
        llm.set_seed(seed)
        if not self.prompt_cache:
            # Evaluate the whole prompt every time: reusing a cached prefix computes the last
            # logits in a batch of another size, which can change the text.
            llm.reset()
        for token in llm.generate(
            tokens,
            temp=request.temperature,
            top_p=request.top_p,
            top_k=TOP_K,
            min_p=MIN_P,
            repeat_penalty=REPEAT_PENALTY,
            grammar=grammar,
        ):
            if cancel.is_set():
                finish = "cancelled"
                break
            if is_eog(self._vocab, token):
                finish = "stop"
                break
            count += 1
            piece, stopped = stops.feed(decoder.decode(llm.detokenize([token])))
            if piece:
                text.append(piece)
                push(piece)
            if stopped:
                finish = "stop"
                break
            if count >= budget:
                break
        if not stops.stopped:  # the text held back was not a stop sequence after all
            rest = stops.flush(decoder.decode(b"", final=True))
            if rest:
                text.append(rest)
                push(rest)
        return Completion(
            text="".join(text),
            prompt_tokens=len(tokens),
            completion_tokens=count,
            finish_reason=finish,
        )

    def _chat(
        self,
        request: GenerationRequest,
        grammar: Any,
        seed: int,
        push: Callable[[str], None],
        cancel: threading.Event,
    ) -> Completion:
        """Through the model's chat format. Token counts are inferred from the streamed pieces
        and the context's length, so they may be off by one."""
        if request.messages:
            messages = [{"role": m.role, "content": m.content} for m in request.messages]
        else:
            messages = [{"role": "user", "content": request.prompt}]
            if request.system:
                messages.insert(0, {"role": "system", "content": request.system})
        try:
            chunks = self._llm.create_chat_completion(
                messages=messages,
                stream=True,
                temperature=request.temperature,
                top_p=request.top_p,
                top_k=TOP_K,
                min_p=MIN_P,
                repeat_penalty=REPEAT_PENALTY,
                max_tokens=request.max_tokens,
                seed=seed,
                stop=list(request.stop),
                grammar=grammar,
            )
            text: list[str] = []
            finish: FinishReason = "length"
            for chunk in chunks:
                if cancel.is_set():
                    finish = "cancelled"
                    break
                choice = chunk["choices"][0]
                piece = choice["delta"].get("content")
                if piece:
                    text.append(piece)
                    push(piece)
                if choice.get("finish_reason") in ("stop", "length"):
                    finish = choice["finish_reason"]
        except ValueError as exc:  # llama-cpp-python's "exceed context window", say
            raise ModelError(f"model {self.name}: {exc}") from None
        count = len(text)
        return Completion(
            text="".join(text),
            prompt_tokens=max(self._llm.n_tokens - count, 0),
            completion_tokens=count,
            finish_reason=finish,
        )

    def _grammar(self, schema: dict[str, Any] | None) -> Any:
        if schema is None:
            return None
        try:
            return native().module.LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
        except Exception as exc:  # noqa: BLE001 - the converter raises plain exceptions
            raise ModelError(
                f"response_schema cannot be turned into a llama.cpp grammar: {exc}"
            ) from None


class _StopFilter:
    """Holds back text that may be the start of a stop sequence, and cuts at the first one."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = tuple(stop for stop in stops if stop)
        self.held = ""
        self.stopped = False

    def feed(self, piece: str) -> tuple[str, bool]:
        """The text that may be shown now, and whether a stop sequence was reached."""
        if not self.stops:
            return piece, False
        text = self.held + piece
        cuts = [index for stop in self.stops if (index := text.find(stop)) >= 0]
        if cuts:
            self.held, self.stopped = "", True
            return text[: min(cuts)], True
        keep = max(
            (
                size
                for stop in self.stops
                for size in range(1, len(stop))
                if text.endswith(stop[:size])
            ),
            default=0,
        )
        self.held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep], False

    def flush(self, piece: str) -> str:
        text, self.held = self.held + piece, ""
        return text
