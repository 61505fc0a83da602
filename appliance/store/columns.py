"""Rows to records and back: the column helpers the Store's table mixins share.

SQLite hands booleans back as 0/1 (PostgreSQL as bool): `from_row` makes every boolean column a
bool, so a record reads the same from either engine.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

BOOL_COLUMNS = frozenset({"dnd", "enabled", "register", "voicemail"})


def row_values(record: Any, columns: Sequence[str]) -> list[Any]:
    """The values of `record`'s `columns`, in order (an INSERT's parameters)."""
    return [getattr(record, c) for c in columns]


def from_row(cls: type, columns: Sequence[str], row: Sequence[Any], **extra: Any) -> Any:
    """A `cls` record from a row of `columns` (booleans as bool) and `extra` fields."""
    values = {
        c: (bool(v) if c in BOOL_COLUMNS else v) for c, v in zip(columns, row, strict=True)
    }
    return cls(**values, **extra)
