"""Errors raised by the store: bad configuration data and store misuse."""

from __future__ import annotations

# ConfigError is defined by the validation layer (which imports nothing of the store); the store
# raises and re-exports it.
from appliance.schema.errors import ConfigError

__all__ = ["ConfigError", "StoreError"]


class StoreError(RuntimeError):
    """A store operation cannot be done (unknown row, illegal CDR transition...)."""
