"""Errors raised by the store: bad configuration data and store misuse."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration item is invalid; the message names section, item and field.

    Example: ``extensions[3].number: '10a1' is not 2-8 digits``.
    """


class StoreError(RuntimeError):
    """A store operation cannot be done (unknown row, illegal CDR transition...)."""
