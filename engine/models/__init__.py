"""Models: the registry (`models.toml`), the providers that run them, the pool that keeps them
loaded, and `ModelService`, which nodes use to generate."""

from engine.models.base import Completion, GenerationRequest
from engine.models.errors import (
    ModelConfigInvalid,
    ModelError,
    ModelNotFound,
    ModelTooLarge,
    ModelUnavailable,
)
from engine.models.registry import DEFAULT_MODEL, ModelRegistry
from engine.models.service import ModelService, ModelStatus

__all__ = [
    "DEFAULT_MODEL",
    "Completion",
    "GenerationRequest",
    "ModelConfigInvalid",
    "ModelError",
    "ModelNotFound",
    "ModelRegistry",
    "ModelService",
    "ModelStatus",
    "ModelTooLarge",
    "ModelUnavailable",
]
