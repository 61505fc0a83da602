"""data/headsets.yaml: the list of USB headsets, each checked by a pydantic model.

Each entry is checked by `HeadsetEntry` (the validation layer, appliance/schema);
HeadsetsConfigError lists every bad field of every entry at once, each with its path
(``headsets[0].rate: must be one of 8000, 16000``). The file's format is described in
hw/headsets.py.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BeforeValidator, Field

from appliance.schema.errors import FieldError, RecordInvalid
from appliance.schema.types import Record, record
from hw.headset import RATES, HeadsetConfig

CODECS = ("PCMU", "PCMA", "G722")


class HeadsetsConfigError(RecordInvalid):
    """data/headsets.yaml is not a valid headset list; `errors` names every bad field."""

    def __init__(self, errors: Sequence[FieldError] | str) -> None:
        super().__init__([FieldError((), errors)] if isinstance(errors, str) else errors)


def _extension(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.isdigit():
        raise ValueError("required, digits only")
    return value


def _required_text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("required, a non-empty string")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _rate(value: Any) -> int:
    if value not in RATES or isinstance(value, bool):
        raise ValueError(f"must be one of {', '.join(map(str, RATES))}")
    return int(value)


def _codecs(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(c in CODECS for c in value):
        raise ValueError(f"a non-empty list of {', '.join(CODECS)}")
    return tuple(value)


def _port(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
        raise ValueError("a port number (0: any)")
    return value


def _hid(value: Any) -> str:
    if not isinstance(value, str) or not (value in ("", "auto") or value.startswith("/")):
        raise ValueError("'auto' or the absolute path of a hidraw node (/dev/hidrawN)")
    return value


def _checked(check: Any) -> Any:
    return BeforeValidator(check)


class HeadsetEntry(Record):
    """One headset of headsets.yaml: the extension it registers as and its audio devices."""

    # Absent required fields are checked too (validate_default): they say what they need.
    extension: Annotated[str, _checked(_extension)] = Field(default=None, validate_default=True)
    password: Annotated[str, _checked(_required_text)] = Field(default=None, validate_default=True)
    input_device: Annotated[str, _checked(_required_text)] = Field(default=None, validate_default=True)
    output_device: Annotated[str, _checked(_text)] = ""
    rate: Annotated[int, _checked(_rate)] = 8000
    codecs: Annotated[tuple[str, ...], _checked(_codecs)] = ("PCMU", "PCMA")
    sip_port: Annotated[int, _checked(_port)] = 0
    hid: Annotated[str, _checked(_hid)] = ""


def parse_headsets(doc: Any, registrar_host: str, registrar_port: int) -> list[HeadsetConfig]:
    """The headsets of a parsed headsets.yaml, registering with the engine at host:port."""
    if doc is None:
        return []
    if not isinstance(doc, list):
        raise HeadsetsConfigError([FieldError(("headsets.yaml",), "must be a list of headsets")])
    out: list[HeadsetConfig] = []
    errors: list[FieldError] = []
    seen: set[str] = set()
    for i, raw in enumerate(doc):
        try:
            entry = record(HeadsetEntry, raw, ("headsets", i), not_mapping="must be a mapping")
        except RecordInvalid as exc:
            errors.extend(exc.errors)
            continue
        if entry.extension in seen:
            errors.append(FieldError(("headsets", i, "extension"), f"{entry.extension} is already a headset"))
            continue
        seen.add(entry.extension)
        out.append(HeadsetConfig(
            extension=entry.extension, password=entry.password, registrar_host=registrar_host,
            registrar_port=registrar_port, input_device=entry.input_device, output_device=entry.output_device,
            rate=entry.rate, codecs=entry.codecs, bind_ip=registrar_host, sip_port=entry.sip_port, hid=entry.hid,
        ))
    if errors:
        raise HeadsetsConfigError(errors)
    return out


def load_headsets(path: Path, registrar_host: str, registrar_port: int) -> list[HeadsetConfig]:
    """Read and check data/headsets.yaml."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise HeadsetsConfigError(f"{path}: not YAML: {exc}") from exc
    return parse_headsets(doc, registrar_host, registrar_port)
