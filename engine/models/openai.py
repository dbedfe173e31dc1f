"""The ``openai`` provider: any OpenAI-compatible server (OpenAI, llama.cpp's servers, Ollama,
vLLM, OpenRouter, …) over HTTP with httpx.

Every generation is one streamed request (server-sent events), its text handed on piece by piece
as it arrives. A 429, a 5xx or a failed connection is retried with exponential backoff (the
server's ``Retry-After`` when it sends one, capped); any other error status fails at once with the
server's message. Cancelling the awaiting task leaves the ``async with client.stream(…)`` block,
which closes the connection: the server sees the request go away. The API key comes from the
environment variable the registry names and is never logged nor shown in an error.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import httpx
import structlog

from engine.models.base import Completion, FinishReason, GenerationRequest, OnText
from engine.models.conversation import TRANSCRIPT_STOP, transcript
from engine.models.errors import ModelError, ModelUnavailable
from engine.models.limits import RateLimiter
from engine.models.registry import OpenAIConfig

__all__ = [
    "BACKOFF_BASE_S",
    "BACKOFF_MAX_S",
    "MESSAGE_MAX",
    "REDACTED",
    "RETRY_AFTER_MAX_S",
    "RETRY_STATUSES",
    "OpenAIModel",
    "unavailable_reason",
]

log = structlog.get_logger("nodeloom.models")

RETRY_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 8.0
RETRY_AFTER_MAX_S = 30.0
MESSAGE_MAX = 500  # characters of a server's error message kept in ours
REDACTED = "[redacted]"


def unavailable_reason(config: OpenAIConfig, environ: Mapping[str, str]) -> str | None:
    """Why a model on this server cannot be used here, or None (the network is not probed)."""
    if config.api_key_env is not None and not environ.get(config.api_key_env):
        return f"environment variable {config.api_key_env} (the API key) is not set"
    return None


class OpenAIModel:
    """A model on an OpenAI-compatible server. One per registry entry: it owns the connection
    pool and the entry's limits (``max_concurrency``, ``requests_per_minute``)."""

    memory = 0

    def __init__(
        self,
        name: str,
        config: OpenAIConfig,
        *,
        environ: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        environ = {} if environ is None else environ
        reason = unavailable_reason(config, environ)
        if reason is not None:
            raise ModelUnavailable(f"model {name}: {reason}")
        self.name = name
        self.config = config
        self._key = environ[config.api_key_env] if config.api_key_env else None
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        self._client = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(config.timeout_s, connect=min(config.timeout_s, 10.0)),
            limits=httpx.Limits(max_connections=config.max_concurrency),
            transport=transport,
        )
        self._slots = asyncio.Semaphore(config.max_concurrency)
        self._rate = (
            RateLimiter(config.requests_per_minute, sleep=sleep)
            if config.requests_per_minute
            else None
        )
        self._sleep = sleep

    @property
    def path(self) -> str:
        return "chat/completions" if self.config.endpoint == "chat" else "completions"

    async def generate(self, request: GenerationRequest, on_text: OnText) -> Completion:
        body = self._body(request)
        async with self._slots:
            for attempt in range(self.config.max_retries + 1):
                if self._rate is not None:
                    await self._rate.acquire()
                try:
                    return await self._attempt(body, on_text)
                except _Retry as retry:
                    if attempt == self.config.max_retries:
                        raise ModelError(self._redact(f"model {self.name}: {retry}")) from None
                    delay = retry.after
                    if delay is None:
                        delay = min(BACKOFF_BASE_S * 2**attempt, BACKOFF_MAX_S)
                    log.warning(
                        "model request retried",
                        model=self.name,
                        reason=self._redact(str(retry))[:200],
                        attempt=attempt + 1,
                        delay_s=round(delay, 3),
                    )
                    await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- one request ---------------------------------------------------------------------

    def _body(self, request: GenerationRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.config.model,
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": request.temperature,
            "top_p": request.top_p,
            "max_tokens": request.max_tokens,
        }
        stop = list(request.stop)
        if self.config.endpoint == "chat":
            if request.messages:
                messages = [{"role": m.role, "content": m.content} for m in request.messages]
            else:
                messages = [{"role": "user", "content": request.prompt}]
                if request.system:
                    messages.insert(0, {"role": "system", "content": request.system})
            body["messages"] = messages
        elif request.messages:
            body["prompt"] = transcript(request.messages)
            stop.append(TRANSCRIPT_STOP)
        else:
            body["prompt"] = (
                f"{request.system}\n\n{request.prompt}" if request.system else request.prompt
            )
        if request.seed is not None:
            body["seed"] = request.seed
        if stop:
            body["stop"] = stop
        if request.response_schema is not None:
            body.update(self._structured(request.response_schema))
        return body

    def _structured(self, schema: dict[str, Any]) -> dict[str, Any]:
        mode = self.config.structured_output
        if mode == "json_schema":
            return {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "output", "schema": schema, "strict": True},
                }
            }
        if mode == "json_object":
            return {"response_format": {"type": "json_object", "schema": schema}}
        try:
            from llama_cpp.llama_grammar import json_schema_to_gbnf  # noqa: PLC0415
        except (ImportError, OSError) as exc:
            raise ModelError(
                f"model {self.name}: structured_output = 'grammar' needs llama-cpp-python to "
                f"turn the schema into a grammar ({exc})"
            ) from None
        try:
            return {"grammar": json_schema_to_gbnf(json.dumps(schema))}
        except Exception as exc:  # noqa: BLE001 - the converter raises plain exceptions
            raise ModelError(
                f"response_schema cannot be turned into a grammar for model {self.name}: {exc}"
            ) from None

    async def _attempt(self, body: dict[str, Any], on_text: OnText) -> Completion:
        started = time.perf_counter()
        where = f"{self.config.base_url.rstrip('/')}/{self.path}"
        try:
            async with self._client.stream("POST", self.path, json=body) as response:
                if response.status_code >= 400:
                    await response.aread()
                    message = f"{where} answered {response.status_code}: {_message(response)}"
                    if response.status_code in RETRY_STATUSES:
                        raise _Retry(message, _retry_after(response))
                    raise ModelError(self._redact(f"model {self.name}: {message}"))
                stream = _Stream(self.name, where, self.config.endpoint, on_text, started)
                if response.headers.get("content-type", "").startswith("application/json"):
                    await response.aread()  # a server that ignored "stream": one JSON answer
                    stream.whole(_json(response.text, self.name, where))
                else:
                    await stream.read(response.aiter_lines())
                return stream.completion()
        except httpx.TimeoutException as exc:
            kind = "connect to" if isinstance(exc, httpx.ConnectTimeout) else "hear from"
            raise ModelError(
                f"model {self.name}: could not {kind} {where} within "
                f"timeout_s={self.config.timeout_s:g} s"
            ) from None
        except httpx.TransportError as exc:
            if isinstance(exc, httpx.ConnectError):
                raise _Retry(f"cannot connect to {where}: {exc}", None) from None
            raise ModelError(
                self._redact(f"model {self.name}: the connection to {where} failed: {exc}")
            ) from None

    def _redact(self, text: str) -> str:
        return text.replace(self._key, REDACTED) if self._key else text


class _Retry(Exception):
    """A failure worth another attempt; ``after``: the server's Retry-After, in seconds."""

    def __init__(self, message: str, after: float | None) -> None:
        super().__init__(message)
        self.after = after


class _Stream:
    """The pieces of one streamed answer, gathered into a `Completion`."""

    def __init__(self, name: str, where: str, endpoint: str, on_text: OnText, started: float):
        self.name, self.where, self.endpoint = name, where, endpoint
        self.on_text = on_text
        self.started = started
        self.first: float | None = None
        self.text: list[str] = []
        self.pieces = 0
        self.usage: dict[str, Any] | None = None
        self.finish: FinishReason | None = None
        self.done = False

    async def read(self, lines: AsyncIterator[str]) -> None:
        async for line in lines:
            if not line or line.startswith(":"):
                continue  # event separator, comment (keep-alive)
            field, _, value = line.partition(":")
            if field != "data":
                if field in ("event", "id", "retry"):
                    continue
                raise self._malformed(f"a line that is not server-sent events: {line[:80]!r}")
            value = value.removeprefix(" ")
            if value.strip() == "[DONE]":
                self.done = True
                break
            self.chunk(_json(value, self.name, self.where, streamed=True))
        if not self.done and self.finish is None:
            raise self._malformed("the stream ended before the answer did (no [DONE])")

    def chunk(self, chunk: Any) -> None:
        if not isinstance(chunk, dict):
            raise self._malformed(f"a chunk is not a JSON object: {str(chunk)[:80]!r}")
        if "error" in chunk:
            error = chunk["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            raise ModelError(f"model {self.name}: {self.where} failed mid-answer: {message}")
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            raise self._malformed("a chunk has no `choices` list")
        if not choices:
            return  # the usage chunk
        choice = choices[0]
        if not isinstance(choice, dict):
            raise self._malformed("a choice is not a JSON object")
        if self.endpoint == "chat":
            delta = choice.get("delta") or choice.get("message") or {}
            piece = delta.get("content") if isinstance(delta, dict) else None
        else:
            piece = choice.get("text")
        if piece:
            if not isinstance(piece, str):
                raise self._malformed("a chunk's text is not a string")
            if self.first is None:
                self.first = time.perf_counter() - self.started
            self.pieces += 1
            self.text.append(piece)
            self.on_text(piece)
        reason = choice.get("finish_reason")
        if reason:
            self.finish = "length" if reason == "length" else "stop"

    def whole(self, answer: Any) -> None:
        """A complete (non-streamed) answer."""
        if isinstance(answer, dict) and self.endpoint == "chat":
            for choice in answer.get("choices") or []:
                if isinstance(choice, dict) and "message" in choice:
                    choice.setdefault("delta", choice["message"])
        self.chunk(answer)
        self.done = True

    def completion(self) -> Completion:
        usage = self.usage or {}
        completion_tokens = usage.get("completion_tokens")
        return Completion(
            text="".join(self.text),
            prompt_tokens=_count(usage.get("prompt_tokens"), 0),
            # Without usage from the server: one token per streamed piece, as servers send them.
            completion_tokens=_count(completion_tokens, self.pieces),
            finish_reason=self.finish or "stop",
            first_token_s=self.first,
            duration_s=time.perf_counter() - self.started,
        )

    def _malformed(self, what: str) -> ModelError:
        return ModelError(f"model {self.name}: malformed stream from {self.where}: {what}")


def _json(text: str, name: str, where: str, *, streamed: bool = False) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        what = "a data line is not JSON" if streamed else "the answer is not JSON"
        raise ModelError(
            f"model {name}: malformed {'stream' if streamed else 'answer'} from {where}: "
            f"{what}: {text[:80]!r}"
        ) from None


def _count(value: Any, default: int) -> int:
    return value if isinstance(value, int) and value >= 0 else default


def _message(response: httpx.Response) -> str:
    """The server's own error message: OpenAI's ``{"error": {"message": …}}``, FastAPI's
    ``{"detail": …}``, else the body's text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    message: Any = None
    if isinstance(body, dict):
        error = body.get("error")
        message = error.get("message") if isinstance(error, dict) else error
        message = message or body.get("detail") or body.get("message")
    text = str(message) if message else response.text.strip() or response.reason_phrase
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_MAX else text[:MESSAGE_MAX] + "…"


def _retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), capped; None without one."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), RETRY_AFTER_MAX_S)
