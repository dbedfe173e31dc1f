"""``nodeloom models discover BASE_URL``: what an OpenAI-compatible server offers (its
``/models``), and, with ``--add``, those models written into the registry (models.toml)."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

import httpx

from engine.models.registry import (
    DEFAULT_ENTRIES,
    NAME_PATTERN,
    OLLAMA_BASE_URL,
    REGISTRY_FILE,
    LlamaCppConfig,
    models_dir,
    parse,
)
from engine.nodes.registry import NodeRegistry
from server.cli_runs import UsageError

TIMEOUT_S = 10.0
DEFAULT_TOML = """# The models workflows may name (SPEC §4); see the README.

[models.{name}]
provider = "llama_cpp"
path = "{path}"
n_ctx = {n_ctx}
"""


def add_command(models: argparse.ArgumentParser) -> None:
    commands = models.add_subparsers(title="models commands", metavar="COMMAND")
    discover = commands.add_parser(
        "discover", help="list the models an OpenAI-compatible server offers; --add registers them"
    )
    discover.add_argument("base_url", metavar="BASE_URL", help="e.g. http://127.0.0.1:8081/v1")
    discover.add_argument(
        "--api-key-env",
        metavar="NAME",
        help="the environment variable holding the server's API key (sent as a Bearer token)",
    )
    discover.add_argument(
        "--add",
        action="append",
        default=[],
        metavar="MODEL",
        help="add the server's model MODEL to models.toml (repeatable), named after it",
    )
    discover.set_defaults(handler=discover_models)


def discover_models(args: argparse.Namespace, registry: NodeRegistry) -> int:
    base_url = args.base_url.rstrip("/")
    if not re.match(r"^https?://[^\s/]+", base_url):
        raise UsageError(f"BASE_URL must be an http(s) URL, got {args.base_url!r}")
    offered = _offered(base_url, _key(args.api_key_env))
    for model in offered:
        print("\t".join((model["id"], str(model.get("owned_by", "")))))
    if not offered:
        print(f"{base_url}/models lists no models")
    if args.add:
        unknown = [name for name in args.add if name not in {m["id"] for m in offered}]
        if unknown:
            raise UsageError(f"{base_url} does not offer {', '.join(map(repr, unknown))}")
        path = models_dir(os.environ) / REGISTRY_FILE
        added = _register(path, base_url, args.add, args.api_key_env)
        for name, server_model in added:
            print(f"added model {name} ({server_model}) to {path}")
    return 0


def _key(variable: str | None) -> str | None:
    if variable is None:
        return None
    key = os.environ.get(variable)
    if not key:
        raise UsageError(f"environment variable {variable} (the API key) is not set")
    return key


def _offered(base_url: str, key: str | None) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    where = f"{base_url}/models"
    try:
        response = httpx.get(where, headers=headers, timeout=TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise UsageError(f"cannot reach {where}: {exc}") from None
    if response.status_code != 200:
        text = " ".join(response.text.split())[:300]
        raise UsageError(f"{where} answered {response.status_code}: {text}")
    try:
        data = response.json()["data"]
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"{where} did not answer an OpenAI model list") from None
    return [m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]


def _register(
    path: Path, base_url: str, models: list[str], api_key_env: str | None
) -> list[tuple[str, str]]:
    """Append an entry per model to the registry file (made with the embedded default first
    when there is none); the whole file is checked before it is written."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        ((name, default),) = DEFAULT_ENTRIES.items()
        assert isinstance(default, LlamaCppConfig)
        text = DEFAULT_TOML.format(name=name, path=default.path, n_ctx=default.n_ctx)
    existing = parse(text, source=str(path))
    added: list[tuple[str, str]] = []
    for model in models:
        name = _name(model)
        if name in existing or name in dict(added):
            raise UsageError(f"{path} already has a model {name!r}")
        lines = [f"\n[models.{name}]"]
        if base_url == OLLAMA_BASE_URL:
            lines.append('provider = "ollama"')
        else:
            lines += ['provider = "openai"', f"base_url = {_quoted(base_url)}"]
        lines.append(f"model = {_quoted(model)}")
        if api_key_env:
            lines.append(f'api_key_env = "{api_key_env}"')
        text = text.rstrip("\n") + "\n" + "\n".join(lines) + "\n"
        added.append((name, model))
    parse(text, source=str(path))  # what is written is a registry that loads
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return added


def _name(model: str) -> str:
    """A registry name for the server's model id (``library/llama3:8b`` → ``llama3-8b``)."""
    name = re.sub(r"[^A-Za-z0-9._:-]+", "-", model.rsplit("/", 1)[-1]).strip("-.:_")
    if not NAME_PATTERN.match(name):
        raise UsageError(f"cannot make a registry name of model {model!r}")
    return name


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
