"""The ``openai`` provider's failures and limits, which a real server will not produce on demand
(429, 500, a malformed stream) against httpx's `MockTransport`; a server that hangs is a real
socket that never answers. The real server is in test_openai_provider.py; its settings and a
missing key in test_openai_settings.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from engine.models import ModelError
from engine.models.base import GenerationRequest
from engine.models.limits import RateLimiter
from engine.models.openai import OpenAIModel
from engine.models.registry import OpenAIConfig
from tests.support.prompts import PERSON

EXTRACT = "Ada Lovelace died in 1852 at the age of 36.\nJSON with her name and age:"
KEY_ENV = "NODELOOM_TEST_SERVER_KEY"


# -- error paths with MockTransport ----------------------------------------------------------


def sse(*chunks: Any, done: bool = True) -> bytes:
    lines = [f"data: {json.dumps(chunk)}\n\n" for chunk in chunks]
    return ("".join(lines) + ("data: [DONE]\n\n" if done else "")).encode()


def text_chunk(text: str, finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}


ANSWER = sse(
    text_chunk("Hel"),
    text_chunk("lo", "stop"),
    {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}},
)


def streamed(content: bytes) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=content)


class Recorder:
    def __init__(self) -> None:
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def mock_model(
    handler: Any, recorder: Recorder | None = None, *, key: str | None = None, **settings: Any
) -> OpenAIModel:
    config = OpenAIConfig(
        base_url="https://llm.example/v1",
        model="m",
        api_key_env="TEST_KEY" if key else None,
        **settings,
    )
    return OpenAIModel(
        "mock",
        config,
        environ={"TEST_KEY": key} if key else {},
        transport=httpx.MockTransport(handler),
        sleep=(recorder or Recorder()).sleep,
    )


async def generate(model: OpenAIModel, request: GenerationRequest | None = None) -> Any:
    try:
        return await model.generate(request or GenerationRequest(prompt="Hi"), lambda _: None)
    finally:
        await model.aclose()


async def test_the_request_carries_the_settings_and_the_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return streamed(ANSWER)

    request = GenerationRequest(
        prompt="Hi",
        system="Be brief.",
        temperature=0.2,
        top_p=0.5,
        max_tokens=9,
        seed=3,
        stop=("\n",),
        response_schema=PERSON,
    )
    completion = await generate(mock_model(handler, key="sk-live-abc"), request)
    assert completion.text == "Hello"
    assert completion.usage == {"prompt_tokens": 7, "completion_tokens": 2}
    assert completion.finish_reason == "stop"
    [sent] = seen
    assert str(sent.url) == "https://llm.example/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-live-abc"
    assert json.loads(sent.content) == {
        "model": "m",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ],
        "temperature": 0.2,
        "top_p": 0.5,
        "max_tokens": 9,
        "seed": 3,
        "stop": ["\n"],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": PERSON, "strict": True},
        },
    }


async def test_the_completions_endpoint_sends_one_prompt_and_counts_pieces() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        chunks = [{"choices": [{"text": t, "finish_reason": None}]} for t in (" Ro", "me")]
        return streamed(sse(*chunks))  # no usage from this server

    model = mock_model(handler, endpoint="completions", structured_output="json_object")
    completion = await generate(
        model, GenerationRequest(prompt="Q: Italy?\nA:", system="Capitals.", response_schema={})
    )
    assert seen[0]["prompt"] == "Capitals.\n\nQ: Italy?\nA:"
    assert seen[0]["response_format"] == {"type": "json_object", "schema": {}}
    assert completion.text == " Rome"
    assert completion.usage == {"prompt_tokens": 0, "completion_tokens": 2}


async def test_429_is_retried_after_the_servers_retry_after() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": "2"}, json={"error": "slow down"})
        if len(calls) == 2:
            return httpx.Response(429, headers={"Retry-After": "3600"})  # capped
        return streamed(ANSWER)

    recorder = Recorder()
    completion = await generate(mock_model(handler, recorder))
    assert completion.text == "Hello"
    assert len(calls) == 3
    assert recorder.sleeps == [2.0, 30.0]


async def test_5xx_until_the_retries_run_out_is_a_clear_error() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(503, json={"error": {"message": "overloaded, try later"}})

    recorder = Recorder()
    with pytest.raises(ModelError) as caught:
        await generate(mock_model(handler, recorder, max_retries=2))
    assert len(calls) == 3
    assert recorder.sleeps == [0.5, 1.0]  # exponential backoff
    assert caught.value.detail == (
        "model mock: https://llm.example/v1/chat/completions answered 503: overloaded, try later"
    )


async def test_400_is_not_retried_and_shows_the_servers_message() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(400, json={"error": {"message": "max_tokens is too large"}})

    recorder = Recorder()
    with pytest.raises(ModelError) as caught:
        await generate(mock_model(handler, recorder))
    assert len(calls) == 1
    assert recorder.sleeps == []
    assert caught.value.detail.endswith("answered 400: max_tokens is too large")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b"data: {not json\n\n",
            "malformed stream from https://llm.example/v1/chat/completions: "
            "a data line is not JSON: '{not json'",
        ),
        (sse(text_chunk("Hel"), done=False), "the stream ended before the answer did"),
        (b"<html>502 bad gateway</html>\n", "a line that is not server-sent events"),
        (sse({"object": "nothing"}), "a chunk has no `choices` list"),
        (sse({"error": {"message": "model crashed"}}), "failed mid-answer: model crashed"),
    ],
    ids=["not-json", "cut-short", "html", "no-choices", "error-event"],
)
async def test_a_malformed_stream_is_a_clear_error(body: bytes, message: str) -> None:
    with pytest.raises(ModelError, match=r"^model mock: ") as caught:
        await generate(mock_model(lambda _: streamed(body)))
    assert message in caught.value.detail


async def test_a_server_that_ignores_stream_is_understood() -> None:
    answer = {
        "choices": [{"message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2},
    }
    completion = await generate(mock_model(lambda _: httpx.Response(200, json=answer)))
    assert completion.text == "Hi!"
    assert completion.usage == {"prompt_tokens": 3, "completion_tokens": 2}


async def test_the_key_never_appears_in_errors_or_logs() -> None:
    key = "sk-very-secret-0123456789"
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.headers["authorization"])
        if len(calls) == 1:  # some servers echo what they were given
            return httpx.Response(500, text=f"upstream rejected Bearer {key}")
        return httpx.Response(401, json={"error": {"message": f"Incorrect API key: {key}"}})

    with capture_logs() as logs, pytest.raises(ModelError) as caught:
        await generate(mock_model(handler, key=key))
    assert calls == [f"Bearer {key}"] * 2
    assert key not in caught.value.detail
    assert caught.value.detail.endswith("answered 401: Incorrect API key: [redacted]")
    assert logs  # the retry was logged …
    assert key not in repr(logs)  # … without the key
    assert key not in repr(caught.value.__cause__) + repr(caught.value.__context__)


async def test_a_failed_connection_is_retried_then_reported() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    recorder = Recorder()
    with pytest.raises(ModelError, match=r"cannot connect to https://llm\.example/v1"):
        await generate(mock_model(handler, recorder, max_retries=1))
    assert recorder.sleeps == [0.5]


@contextlib.asynccontextmanager
async def silent_server(reply: bytes = b"") -> AsyncIterator[str]:
    """A real socket that accepts, sends ``reply`` (or nothing), and never says more."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        if reply:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(reply)
            await writer.drain()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("stalls", ["before-headers", "mid-stream"])
async def test_a_hanging_server_times_out(stalls: str) -> None:
    reply = b""
    if stalls == "mid-stream":
        first = sse(text_chunk("Hel"), done=False)
        reply = (
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n" + f"{len(first):x}\r\n".encode() + first + b"\r\n"
        )
    async with silent_server(reply) as base_url:
        model = OpenAIModel(
            "slow", OpenAIConfig(base_url=base_url, model="m", timeout_s=0.5), environ={}
        )
        started = time.perf_counter()
        with pytest.raises(ModelError) as caught:
            await generate(model)
    assert time.perf_counter() - started < 2
    assert caught.value.detail == (
        f"model slow: could not hear from {base_url}/chat/completions within timeout_s=0.5 s"
    )


async def test_cancelling_closes_the_streamed_response() -> None:
    closed = asyncio.Event()
    started = asyncio.Event()

    class Endless(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            while True:
                yield sse(text_chunk("x"), done=False)
                started.set()
                await asyncio.sleep(0.01)

        async def aclose(self) -> None:
            closed.set()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Endless())

    model = mock_model(handler)
    task = asyncio.create_task(model.generate(GenerationRequest(prompt="Hi"), lambda _: None))
    await asyncio.wait_for(started.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert closed.is_set()
    await model.aclose()


# -- limits ----------------------------------------------------------------------------------


async def test_max_concurrency_limits_requests_in_flight() -> None:
    in_flight = peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return streamed(ANSWER)

    model = mock_model(handler, max_concurrency=2)
    request = GenerationRequest(prompt="Hi")
    results = await asyncio.gather(*(model.generate(request, lambda _: None) for _ in range(6)))
    await model.aclose()
    assert [r.text for r in results] == ["Hello"] * 6
    assert peak == 2


async def test_requests_per_minute_waits_for_the_window() -> None:
    now = [0.0]
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(2, clock=lambda: now[0], sleep=sleep)
    await limiter.acquire()
    now[0] = 10.0
    await limiter.acquire()
    assert sleeps == []
    await limiter.acquire()  # the third in a minute waits for the first to leave the window
    assert sleeps == [50.0]
    await limiter.acquire()  # and the fourth for the second
    assert sleeps == [50.0, 10.0]


async def test_requests_per_minute_applies_to_the_model() -> None:
    recorder = Recorder()
    model = mock_model(lambda _: streamed(ANSWER), recorder, requests_per_minute=1)
    await model.generate(GenerationRequest(prompt="Hi"), lambda _: None)
    # A real minute would pass here: the limiter sleeps (recorded), then lets the next one go.
    await model.generate(GenerationRequest(prompt="Hi"), lambda _: None)
    await model.aclose()
    assert len(recorder.sleeps) == 1
    assert 59 < recorder.sleeps[0] <= 60
