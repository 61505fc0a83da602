"""data/hardware.yaml: which line boards exist and what each port is.

    boards:
      - device: /dev/serial/by-id/usb-Plateau_LineBoard_VB0001-if00   # or /dev/ttyACM0, a pty...
        name: board0                      # optional, defaults to board<i>
        ports:
          0: {fxs: "1005"}                # an analog phone as extension 1005
          1: {fxs: {extension: "1006", cadence: UK, cid: dtmf}}
          2: {fxo: {did: "0140000000", trunk_name: analog}}
          3: {bri: {dids: ["0140000010"], trunk_name: isdn}}   # or did_prefix: "01400000"; ptp: false
    modems:                               # V.253 voice modems, each an analog line (hw/modem_line.py)
      - {device: /dev/ttyACM1, did: "0140000001", trunk_name: analog-modem}   # name: modem<i>, cid_wait_s

Either section may be left out, not both. Each record is checked by a pydantic model (the validation
layer, appliance/schema); HardwareConfigError lists every bad field at once, each with its path
(``boards[0].ports.2.fxo.did: required``, ``modems[0].did: required``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BeforeValidator, Field, field_validator

from appliance.schema.errors import FieldError, RecordInvalid
from appliance.schema.types import Record, record
from hw.bri import BriConfig
from hw.frames import MAX_PORT, Cadence, CidMode
from hw.fxo import CID_WAIT_S, FxoConfig
from hw.fxs import FxsConfig
from hw.modem_line import ModemLineConfig

_CID = {"none": CidMode.NONE, "etsi": CidMode.ETSI_FSK, "bell": CidMode.BELL_FSK, "dtmf": CidMode.DTMF}


class HardwareConfigError(RecordInvalid):
    """hardware.yaml is not usable; `errors` names every bad field (the validation layer's shape)."""

    def __init__(self, errors: Sequence[FieldError] | str) -> None:
        super().__init__([FieldError((), errors)] if isinstance(errors, str) else errors)


@dataclass(frozen=True)
class BoardConfig:
    device: str
    name: str
    ports: dict[int, FxsConfig | FxoConfig | BriConfig] = field(default_factory=dict)


@dataclass(frozen=True)
class HardwareConfig:
    """The whole of hardware.yaml."""

    boards: list[BoardConfig] = field(default_factory=list)
    modems: list[ModemLineConfig] = field(default_factory=list)


# -- field types: hardware.yaml's own words --------------------------------------------------------------
def _name(value: Any) -> str:
    # A number is a name too here (extension: 1006): hardware.yaml is written by hand.
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value) == "":
        raise ValueError("must be a non-empty string")
    return str(value)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("true or false")
    return value


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 10:
        raise ValueError("a number of seconds, 0-10")
    return float(value)


def _numbers(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError("must be a list of numbers")
    return value


def _cadence(value: Any) -> Cadence:
    name = str(value).upper()
    if name not in Cadence.__members__:
        raise ValueError(f"one of {', '.join(Cadence.__members__)}")
    return Cadence[name]


def _cid(value: Any) -> CidMode:
    name = str(value).lower()
    if name not in _CID:
        raise ValueError(f"one of {', '.join(_CID)}")
    return _CID[name]


Name = Annotated[str, BeforeValidator(_name)]
Flag = Annotated[bool, BeforeValidator(_flag)]
Seconds = Annotated[float, BeforeValidator(_seconds)]


class FxsSpec(Record):
    extension: Name
    cadence: Annotated[Cadence, BeforeValidator(_cadence)] = Cadence.FR
    cid: Annotated[CidMode, BeforeValidator(_cid)] = CidMode.ETSI_FSK


class FxoSpec(Record):
    did: Name
    trunk_name: Name = "analog"
    answer_on_dial: Flag = False
    cid_wait_s: Seconds = CID_WAIT_S


class BriSpec(Record):
    dids: Annotated[list[Name], BeforeValidator(_numbers)] = []
    did_prefix: Name = ""
    trunk_name: Name = "isdn"
    ptp: Flag = True


class BoardSpec(Record):
    device: Name = Field(default=None, validate_default=True)  # absent: "must be a non-empty string"
    name: Name = ""  # absent: board<i>
    ports: dict[Any, Any] = {}

    @field_validator("ports", mode="before")
    @classmethod
    def _mapping(cls, v: Any) -> Any:
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise ValueError("must be a mapping of port number to port")
        return v


class ModemSpec(Record):
    device: Name
    did: Name
    trunk_name: Name = "analog"
    name: Name = ""  # absent: modem<i>
    cid_wait_s: Seconds = CID_WAIT_S


def _spec(model: type[Record], raw: Any, loc: tuple[str | int, ...], errors: list[FieldError],
          not_mapping: str) -> Any:
    try:
        return record(model, raw, loc, missing="required", not_mapping=not_mapping)
    except RecordInvalid as exc:
        errors.extend(exc.errors)
        return None


def _port(value: Any, loc: tuple[str | int, ...], errors: list[FieldError]) -> FxsConfig | FxoConfig | BriConfig | None:
    if not isinstance(value, dict) or len(value) != 1:
        errors.append(FieldError(loc, "must be {fxs: ...}, {fxo: ...} or {bri: ...}"))
        return None
    (kind, spec), = value.items()
    if kind == "fxs":
        if not isinstance(spec, dict):  # the short form, {fxs: "1005"}
            try:
                return FxsConfig(_name(spec))
            except ValueError as exc:
                errors.append(FieldError(loc + ("fxs",), str(exc)))
                return None
        fxs = _spec(FxsSpec, spec, loc + ("fxs",), errors, "")
        return None if fxs is None else FxsConfig(fxs.extension, fxs.cadence, fxs.cid)
    if kind == "fxo":
        fxo = _spec(FxoSpec, spec, loc + ("fxo",), errors, "must be a mapping with did and trunk_name")
        return None if fxo is None else FxoConfig(fxo.did, fxo.trunk_name, fxo.answer_on_dial, fxo.cid_wait_s)
    if kind == "bri":
        bri = _spec(BriSpec, spec, loc + ("bri",), errors, "must be a mapping with trunk_name and dids or did_prefix")
        return None if bri is None else BriConfig(bri.trunk_name, tuple(bri.dids), bri.did_prefix, bri.ptp)
    errors.append(FieldError(loc, f"unknown port kind {kind!r} (fxs, fxo or bri)"))
    return None


def _boards(items: list[Any], errors: list[FieldError]) -> list[BoardConfig]:
    boards: list[BoardConfig] = []
    for i, raw in enumerate(items):
        spec = _spec(BoardSpec, raw, ("boards", i), errors, "must be a mapping")
        if spec is None:
            continue
        ports: dict[int, FxsConfig | FxoConfig | BriConfig] = {}
        for key, value in spec.ports.items():
            # Port keys read as written ("ports.2"), not as list indexes.
            loc: tuple[str | int, ...] = ("boards", i, "ports", str(key))
            try:
                index = int(key)
            except (TypeError, ValueError):
                index = -1
            if not 0 <= index <= MAX_PORT:
                errors.append(FieldError(loc, f"port numbers are 0-{MAX_PORT}"))
                continue
            port = _port(value, loc, errors)
            if port is not None:
                ports[index] = port
        boards.append(BoardConfig(spec.device, spec.name or f"board{i}", ports))
    return boards


def _modems(items: list[Any], errors: list[FieldError]) -> list[ModemLineConfig]:
    modems: list[ModemLineConfig] = []
    for i, raw in enumerate(items):
        spec = _spec(ModemSpec, raw, ("modems", i), errors, "must be a mapping with device and did")
        if spec is not None:
            modems.append(ModemLineConfig(device=spec.device, did=spec.did, trunk_name=spec.trunk_name,
                                          name=spec.name or f"modem{i}", cid_wait_s=spec.cid_wait_s))
    return modems


def parse_hardware(data: Any) -> HardwareConfig:
    """Check a loaded hardware.yaml document (boards and modems); HardwareConfigError lists every
    bad field at once."""
    if not isinstance(data, dict) or ("boards" not in data and "modems" not in data):
        raise HardwareConfigError([FieldError(("boards",), "required, a list (or modems:, a list)")])
    errors: list[FieldError] = []
    for section in ("boards", "modems"):
        if section in data and not isinstance(data[section], list):
            errors.append(FieldError((section,), "must be a list"))
    if errors:
        raise HardwareConfigError(errors)
    cfg = HardwareConfig(_boards(data.get("boards", []), errors), _modems(data.get("modems", []), errors))
    if errors:
        raise HardwareConfigError(errors)
    # One serial device is one piece of hardware: a board and a modem cannot share it.
    owner = {b.device: f"boards[{i}]" for i, b in enumerate(cfg.boards)}
    for i, m in enumerate(cfg.modems):
        if m.device in owner:
            errors.append(FieldError(("modems", i, "device"), f"{m.device} is already used by {owner[m.device]}"))
        owner[m.device] = f"modems[{i}]"
    for section, names in (("boards", [b.name for b in cfg.boards]), ("modems", [m.name for m in cfg.modems])):
        for i, name in enumerate(names):  # a reload matches boards and modems by name
            if name in names[:i]:
                errors.append(FieldError((section, i, "name"), f"{name!r} is used twice"))
    boards = [b.device for b in cfg.boards]
    for i, device in enumerate(boards):
        if device in boards[:i]:
            errors.append(FieldError(("boards", i, "device"),
                                     f"{device} is already used by boards[{boards.index(device)}]"))
    if errors:
        raise HardwareConfigError(errors)
    return cfg


def parse(data: Any) -> list[BoardConfig]:
    """Check a loaded hardware.yaml document; its boards (see `parse_hardware` for everything)."""
    return parse_hardware(data).boards


def load_hardware(path: Path) -> HardwareConfig:
    """Read and check hardware.yaml; raises HardwareConfigError (OSError if unreadable)."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise HardwareConfigError(f"{path}: not valid YAML: {exc}") from exc
    return parse_hardware(data)


def load(path: Path) -> list[BoardConfig]:
    """Read and check hardware.yaml; its boards (see `load_hardware`)."""
    return load_hardware(path).boards
