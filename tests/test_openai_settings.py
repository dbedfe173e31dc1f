"""The ``openai`` provider's registry entries (every setting, each bad one named) and a missing
API key: the model is unavailable, with the variable named, and a generation fails clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.models import ModelRegistry, ModelService, ModelUnavailable
from engine.models.base import GenerationRequest
from engine.models.registry import OpenAIConfig, parse


def test_registry_entry_with_every_setting() -> None:
    entries = parse(
        '[models.paid]\nprovider = "openai"\nbase_url = "https://api.example.com/v1"\n'
        'model = "big"\napi_key_env = "PAID_KEY"\nendpoint = "completions"\n'
        'structured_output = "json_object"\nmax_concurrency = 2\nrequests_per_minute = 30\n'
        "timeout_s = 12.5\nmax_retries = 1\n"
    )
    assert entries["paid"] == OpenAIConfig(
        base_url="https://api.example.com/v1",
        model="big",
        api_key_env="PAID_KEY",
        endpoint="completions",
        structured_output="json_object",
        max_concurrency=2,
        requests_per_minute=30,
        timeout_s=12.5,
        max_retries=1,
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('endpoint = "responses"', "endpoint: invalid enum value 'responses'"),
        ("max_concurrency = 0", "max_concurrency: expected `int` >= 1"),
        ('api_key_env = "sk-abc 123"', "api_key_env: expected `str` matching"),
        ("timeout_s = 0", "timeout_s: expected `float` > 0"),
    ],
)
def test_a_bad_openai_entry_is_a_clear_error(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(
            f'[models.paid]\nprovider = "openai"\nbase_url = "https://x.example/v1"\n'
            f'model = "m"\n{line}\n'
        )
    with pytest.raises(ValueError, match="base_url: expected `str` matching"):
        parse('[models.paid]\nprovider = "openai"\nbase_url = "ftp://x"\nmodel = "m"\n')


def test_a_missing_api_key_makes_the_model_unavailable(tmp_path: Path) -> None:
    (tmp_path / "models.toml").write_text(
        '[models.keyed]\nprovider = "openai"\nbase_url = "https://x.example/v1"\nmodel = "m"\n'
        'api_key_env = "NODELOOM_TEST_ABSENT_KEY"\n'
        '[models.open]\nprovider = "openai"\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "m"\n'
    )
    registry = ModelRegistry.load(tmp_path)
    statuses = {s.name: s for s in ModelService(registry, environ={}).status()}
    assert statuses["keyed"].available is False
    assert statuses["keyed"].reason == (
        "environment variable NODELOOM_TEST_ABSENT_KEY (the API key) is not set"
    )
    assert statuses["open"].available is True
    assert statuses["open"].location == "http://127.0.0.1:9/v1"
    keyed = ModelService(registry, environ={"NODELOOM_TEST_ABSENT_KEY": "sk-1"}).status()
    assert all(status.available for status in keyed)


async def test_a_missing_api_key_fails_the_generation_clearly(tmp_path: Path) -> None:
    (tmp_path / "models.toml").write_text(
        '[models.keyed]\nprovider = "openai"\nbase_url = "https://x.example/v1"\nmodel = "m"\n'
        'api_key_env = "NODELOOM_TEST_ABSENT_KEY"\n'
    )
    service = ModelService(ModelRegistry.load(tmp_path), environ={})
    with pytest.raises(ModelUnavailable, match="model keyed: environment variable"):
        await service.generate("keyed", GenerationRequest(prompt="Hi"), lambda _: None)
    await service.close()
