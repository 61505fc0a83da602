"""Field types of the validation layer: pydantic types that say what is wrong as an admin reads it.

pydantic's own words ("Input should be a valid string") do not tell an administrator that YAML
read their unquoted 0123 as the number 83; these types check the raw value first and explain.
They are strict the way the provisioning file always was: a bool is not an integer (it is one in
Python, not in YAML), a number is not a string. `record()` turns a pydantic failure into
RecordInvalid with every FieldError at once.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from appliance.schema.errors import FieldError, RecordInvalid, field_errors


def type_name(value: Any) -> str:
    """A value's type as YAML calls it."""
    return "null" if value is None else type(value).__name__


def _str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError(f"must be a string, got number {value!r} (quote it in YAML: '{value}')")
    raise ValueError(f"must be a string, got {type_name(value)}")


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be an integer, got {type_name(value)} {value!r}")
    return value


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be a number, got {type_name(value)} {value!r}")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"must be a list, got {type_name(value)}")
    return value


def _optional(check: Any) -> Any:
    def inner(value: Any) -> Any:
        return None if value is None else check(value)
    return inner


Text = Annotated[str, BeforeValidator(_str)]
Flag = Annotated[bool, BeforeValidator(_bool)]
Whole = Annotated[int, BeforeValidator(_int)]
# int | float: an integer stays one (its message shows "1", not "1.0").
Number = Annotated[int | float, BeforeValidator(_float)]
OptText = Annotated[str | None, BeforeValidator(_optional(_str))]
OptWhole = Annotated[int | None, BeforeValidator(_optional(_int))]
TextList = Annotated[list[Text], BeforeValidator(_list)]

# The checker of each Python annotation a dataclass record may use (store/validation.check_type).
CHECKS: dict[Any, Any] = {str: _str, bool: _bool, int: _int, float: _float}


class Record(BaseModel):
    """Base of every record model: unknown keys are errors (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


M = TypeVar("M", bound=Record)


def record(model: type[M], data: Any, prefix: Sequence[str | int] = (), *, missing: str = "is required",
           not_mapping: str = "") -> M:
    """`data` (a mapping of fields) checked by `model`; RecordInvalid lists every error at once.

    `missing` and `not_mapping` are the words of the file format for an absent required field
    and for an item that is not a mapping.
    """
    if not isinstance(data, Mapping):
        raise RecordInvalid([FieldError(tuple(prefix),
                                        not_mapping or f"must be a mapping of fields, got {type_name(data)}")])
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        known = [f.alias or name for name, f in model.model_fields.items()]
        raise RecordInvalid(field_errors(exc, prefix, known=known, missing=missing)) from None


def errors_of(model: type[Record], data: Any, prefix: Sequence[str | int] = ()) -> list[FieldError]:
    """Every FieldError of `data` against `model` (empty when it is valid)."""
    try:
        record(model, data, prefix)
    except RecordInvalid as exc:
        return list(exc.errors)
    return []


def matches(value: str | None, regex: re.Pattern[str], what: str) -> str | None:
    """`value` unless it does not match `regex`: then ValueError "'x' is not <what>"."""
    if value is not None and not regex.match(value):
        raise ValueError(f"{value!r} is not {what}")
    return value


def in_range(value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise ValueError(f"{value} is not in {low}..{high}")
    return value


def one_of(value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
    return value
