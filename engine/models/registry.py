"""The model registry: `models.toml` in the models folder, decoded into strict msgspec Structs.

```toml
[models.gemma-3-270m]
provider = "llama_cpp"            # in-process llama-cpp-python
path = "gemma-3-270m-q4_k_m.gguf" # relative to the models folder
n_ctx = 2048

[models.local-server]
provider = "openai"               # any OpenAI-compatible server
base_url = "http://127.0.0.1:8081/v1"
model = "default"
api_key_env = "LOCAL_SERVER_KEY"  # the variable's name; the key stays in the environment
n_ctx = 8192                      # optional: its context, to fit conversations and max_tokens
price_in = 0.15                   # optional: per million prompt tokens (any currency)
price_out = 0.60                  # optional: per million completion tokens

[models.llama3]
provider = "ollama"               # an OpenAI-compatible server at Ollama's default address
model = "llama3.2"
```
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from engine.models.errors import ModelConfigInvalid, ModelNotFound

__all__ = [
    "DEFAULT_ENTRIES",
    "DEFAULT_MODEL",
    "MODELS_DIR_ENV",
    "NAME_PATTERN",
    "OLLAMA_BASE_URL",
    "PROVIDERS",
    "REGISTRY_FILE",
    "LlamaCppConfig",
    "ModelConfig",
    "ModelRegistry",
    "OllamaConfig",
    "OpenAIConfig",
    "Positive",
    "Price",
    "models_dir",
    "parse",
]

MODELS_DIR_ENV = "NODELOOM_MODELS_DIR"
REGISTRY_FILE = "models.toml"
DEFAULT_MODEL = "gemma-3-270m"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")

Positive = Annotated[int, msgspec.Meta(ge=1)]
# Per million tokens, in whatever currency the operator counts in.
Price = Annotated[float, msgspec.Meta(ge=0)]
OLLAMA_BASE_URL = "http://127.0.0.1:11434/v1"
PROVIDERS = ("llama_cpp", "openai", "ollama")


class LlamaCppConfig(
    msgspec.Struct, tag="llama_cpp", tag_field="provider", forbid_unknown_fields=True, kw_only=True
):
    """A GGUF file run in-process by llama-cpp-python."""

    path: str
    n_ctx: Annotated[int, msgspec.Meta(ge=16)] = 2048
    # Prompt tokens evaluated per step; also sizes llama.cpp's compute buffer.
    n_batch: Positive = 512
    # Generation threads; default: the CPU cores this process may use.
    n_threads: Positive | None = None
    # ``completion`` forces plain completion; a llama-cpp-python chat format name (``chatml``,
    # ``gemma``, …) forces chat. Default: chat through the GGUF's own chat template if it has
    # one, else plain completion (base models have none).
    chat_format: str | None = None
    # Reuse the KV cache of the prompt prefix shared with the previous request: a faster first
    # token for repeated prompts, but the text may then differ slightly from an uncached run.
    prompt_cache: bool = False
    price_in: Price | None = None
    price_out: Price | None = None
    # Whether the model makes embeddings for collections (SPEC §14): loaded apart for that,
    # with mean pooling.
    embedding: bool = False
    description: str = ""

    @property
    def context(self) -> int:
        return self.n_ctx

    def file(self, models_dir: Path) -> Path:
        return models_dir / self.path


class OpenAIConfig(
    msgspec.Struct, tag="openai", tag_field="provider", forbid_unknown_fields=True, kw_only=True
):
    """An OpenAI-compatible server (llama.cpp server, Ollama, vLLM, OpenRouter, …)."""

    # Up to and including the version: ``https://api.openai.com/v1``.
    base_url: Annotated[str, msgspec.Meta(pattern=r"^https?://[^\s/]+")]
    # The model name the server expects.
    model: str
    # The NAME of the environment variable holding the API key (sent as a Bearer token); the
    # key itself is never written in the registry, logged, or shown in an error.
    api_key_env: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    # ``chat``: /chat/completions with system and user messages. ``completions``: /completions
    # with the system text and the prompt as one plain prompt (base models, e.g. served by
    # llama.cpp).
    endpoint: Literal["chat", "completions"] = "chat"
    # How a response_schema is sent: ``json_schema`` (OpenAI's structured outputs, vLLM,
    # llama.cpp's llama-server), ``json_object`` ({"type": "json_object", "schema": …}:
    # llama-cpp-python's server on the chat endpoint), ``grammar`` (a GBNF grammar made from the
    # schema: llama.cpp servers, also on the completions endpoint).
    structured_output: Literal["json_schema", "json_object", "grammar"] = "json_schema"
    # Requests in flight at once, and started per minute (retries count): a batch of runs
    # cannot flood a paid provider.
    max_concurrency: Positive = 4
    requests_per_minute: Positive | None = None
    # Seconds to connect, and to wait for each piece of the streamed answer.
    timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    # Further attempts after a 429, a 5xx or a failed connection, with exponential backoff.
    max_retries: Annotated[int, msgspec.Meta(ge=0, le=10)] = 3
    # The model's context in tokens, when known: conversations are cut to fit it (counted by
    # an estimate) and a larger max_tokens is refused.
    n_ctx: Annotated[int, msgspec.Meta(ge=16)] | None = None
    price_in: Price | None = None
    price_out: Price | None = None
    # Whether the server makes embeddings with this model (``/embeddings``) for collections.
    embedding: bool = False
    description: str = ""

    @property
    def context(self) -> int | None:
        return self.n_ctx


class OllamaConfig(OpenAIConfig, tag="ollama", kw_only=True):
    """An Ollama server: OpenAI-compatible, at Ollama's default address unless ``base_url``."""

    base_url: Annotated[str, msgspec.Meta(pattern=r"^https?://[^\s/]+")] = OLLAMA_BASE_URL


ModelConfig = LlamaCppConfig | OpenAIConfig | OllamaConfig

# Used when the models folder has no models.toml: the embedded model alone.
DEFAULT_ENTRIES: dict[str, ModelConfig] = {
    DEFAULT_MODEL: LlamaCppConfig(path="gemma-3-270m-q4_k_m.gguf", n_ctx=2048),
}


def models_dir(environ: Mapping[str, str]) -> Path:
    """``NODELOOM_MODELS_DIR`` of ``environ`` (a process's environment), else ``./models``."""
    value = environ.get(MODELS_DIR_ENV, "").strip()
    return Path(value or "models")


class ModelRegistry:
    """The models workflows may name, by name, and the folder their files are relative to."""

    def __init__(self, entries: Mapping[str, ModelConfig], directory: Path) -> None:
        self._entries = dict(entries)
        self.directory = directory

    @classmethod
    def load(cls, directory: Path | None = None) -> ModelRegistry:
        """Read ``models.toml`` from ``directory`` (default: ``./models``). Without the file,
        the registry holds the embedded default model only. Every bad entry is reported in one
        `ModelConfigInvalid` naming the model and the field."""
        directory = Path("models") if directory is None else directory
        path = directory / REGISTRY_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(DEFAULT_ENTRIES, directory)
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelConfigInvalid(f"{path}: cannot read: {exc}") from None
        return cls(parse(text, source=str(path)), directory)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._entries)

    def get(self, name: str) -> ModelConfig:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise ModelNotFound(f"unknown model {name!r} (models: {known})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[tuple[str, ModelConfig]]:
        return iter(sorted(self._entries.items()))

    def __len__(self) -> int:
        return len(self._entries)


def parse(text: str, *, source: str = REGISTRY_FILE) -> dict[str, ModelConfig]:
    """The entries of a ``models.toml`` document, or `ModelConfigInvalid` listing every problem."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ModelConfigInvalid(f"{source}: not valid TOML: {exc}") from None
    unknown = sorted(set(document) - {"models"})
    problems = [f"unknown top-level key {key!r} (only [models.NAME] tables)" for key in unknown]
    models = document.get("models", {})
    if not isinstance(models, dict):
        problems.append("`models` must be a table of [models.NAME] tables")
        models = {}
    entries: dict[str, ModelConfig] = {}
    for name, entry in models.items():
        if not NAME_PATTERN.match(name):
            problems.append(f"model {name!r}: the name must match {NAME_PATTERN.pattern}")
            continue
        try:
            entries[name] = _decode_entry(entry)
        except msgspec.ValidationError as exc:
            problems.append(f"model {name!r}: {_describe(exc)}")
    if problems:
        raise ModelConfigInvalid(f"{source}: " + "; ".join(problems))
    return entries


def _decode_entry(entry: Any) -> ModelConfig:
    if not isinstance(entry, dict):
        raise msgspec.ValidationError("expected a table [models.NAME]")
    if "provider" not in entry:
        raise msgspec.ValidationError(f"field `provider` is missing ({', '.join(PROVIDERS)})")
    if entry["provider"] not in PROVIDERS:
        raise msgspec.ValidationError(
            f"provider: unknown provider {entry['provider']!r} ({', '.join(PROVIDERS)})"
        )
    config: ModelConfig = msgspec.convert(entry, ModelConfig)
    return config


_AT = re.compile(r"^(?P<message>.*) - at `\$(?:\.(?P<field>[^`]*))?`$")


def _describe(exc: msgspec.ValidationError) -> str:
    """msgspec's "Expected `int`, got `str` - at `$.n_ctx`" as "n_ctx: expected `int`, got
    `str`"."""
    text = str(exc).replace("Object missing required", "missing required")
    text = text.replace("Object contains unknown field", "unknown field")
    match = _AT.match(text)
    if match and match["field"]:
        message = match["message"]
        return f"{match['field']}: {message[:1].lower()}{message[1:]}"
    return text[:1].lower() + text[1:]
