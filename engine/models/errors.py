"""Errors of the model layer; all are `NodeloomError`s with a message that says what to do."""

from __future__ import annotations

from engine.errors import NodeloomError

__all__ = ["ModelConfigInvalid", "ModelError", "ModelNotFound", "ModelTooLarge", "ModelUnavailable"]


class ModelConfigInvalid(NodeloomError, ValueError):
    """`models.toml` or a model setting from the environment is invalid."""


class ModelError(NodeloomError):
    """A model could not be used: unknown, unavailable, too large, or it failed to generate."""


class ModelNotFound(ModelError, LookupError):
    """No model of that name in the registry."""


class ModelUnavailable(ModelError):
    """The model is registered but cannot be used here: its file is missing or corrupt, or its
    provider's library is not installed."""


class ModelTooLarge(ModelError, MemoryError):
    """Loading the model would exceed the memory budget."""
