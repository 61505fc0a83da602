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

Either section may be left out, not both. Errors name the field (``boards[0].ports.2.fxo.did: required``,
``modems[0].did: required``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hw.bri import BriConfig
from hw.frames import MAX_PORT, Cadence, CidMode
from hw.fxo import CID_WAIT_S, FxoConfig
from hw.fxs import FxsConfig
from hw.modem_line import ModemLineConfig

_CID = {"none": CidMode.NONE, "etsi": CidMode.ETSI_FSK, "bell": CidMode.BELL_FSK, "dtmf": CidMode.DTMF}


class HardwareConfigError(ValueError):
    """hardware.yaml is not usable; the message names the field."""


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


def _str(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value) == "":
        raise HardwareConfigError(f"{where}: must be a non-empty string")
    return str(value)


def _cid_wait(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 10:
        raise HardwareConfigError(f"{where}: a number of seconds, 0-10")
    return float(value)


def _port(value: Any, where: str) -> FxsConfig | FxoConfig | BriConfig:
    if not isinstance(value, dict) or len(value) != 1:
        raise HardwareConfigError(f"{where}: must be {{fxs: ...}}, {{fxo: ...}} or {{bri: ...}}")
    (kind, spec), = value.items()
    if kind == "fxs":
        if not isinstance(spec, dict):
            return FxsConfig(_str(spec, f"{where}.fxs"))
        unknown = set(spec) - {"extension", "cadence", "cid"}
        if unknown:
            raise HardwareConfigError(f"{where}.fxs: unknown field {sorted(unknown)[0]!r}")
        cadence = str(spec.get("cadence", "FR")).upper()
        if cadence not in Cadence.__members__:
            raise HardwareConfigError(f"{where}.fxs.cadence: one of {', '.join(Cadence.__members__)}")
        cid = str(spec.get("cid", "etsi")).lower()
        if cid not in _CID:
            raise HardwareConfigError(f"{where}.fxs.cid: one of {', '.join(_CID)}")
        return FxsConfig(_str(spec.get("extension"), f"{where}.fxs.extension"), Cadence[cadence], _CID[cid])
    if kind == "fxo":
        if not isinstance(spec, dict):
            raise HardwareConfigError(f"{where}.fxo: must be a mapping with did and trunk_name")
        unknown = set(spec) - {"did", "trunk_name", "answer_on_dial", "cid_wait_s"}
        if unknown:
            raise HardwareConfigError(f"{where}.fxo: unknown field {sorted(unknown)[0]!r}")
        if "did" not in spec:
            raise HardwareConfigError(f"{where}.fxo.did: required")
        wait = _cid_wait(spec.get("cid_wait_s", CID_WAIT_S), f"{where}.fxo.cid_wait_s")
        answer = spec.get("answer_on_dial", False)
        if not isinstance(answer, bool):
            raise HardwareConfigError(f"{where}.fxo.answer_on_dial: true or false")
        return FxoConfig(_str(spec["did"], f"{where}.fxo.did"),
                         _str(spec.get("trunk_name", "analog"), f"{where}.fxo.trunk_name"), answer, wait)
    if kind == "bri":
        return _bri(spec, f"{where}.bri")
    raise HardwareConfigError(f"{where}: unknown port kind {kind!r} (fxs, fxo or bri)")


def _bri(spec: Any, where: str) -> BriConfig:
    """An ISDN BRI port (hw/bri.py): `dids` and/or `did_prefix`, `trunk_name`, `ptp`."""
    if not isinstance(spec, dict):
        raise HardwareConfigError(f"{where}: must be a mapping with trunk_name and dids or did_prefix")
    unknown = set(spec) - {"dids", "did_prefix", "trunk_name", "ptp"}
    if unknown:
        raise HardwareConfigError(f"{where}: unknown field {sorted(unknown)[0]!r}")
    dids = spec.get("dids", [])
    if not isinstance(dids, list):
        raise HardwareConfigError(f"{where}.dids: must be a list of numbers")
    ptp = spec.get("ptp", True)
    if not isinstance(ptp, bool):
        raise HardwareConfigError(f"{where}.ptp: true or false")
    prefix = _str(spec["did_prefix"], f"{where}.did_prefix") if "did_prefix" in spec else ""
    return BriConfig(_str(spec.get("trunk_name", "isdn"), f"{where}.trunk_name"),
                     tuple(_str(d, f"{where}.dids[{i}]") for i, d in enumerate(dids)), prefix, ptp)


def _boards(items: list[Any]) -> list[BoardConfig]:
    boards: list[BoardConfig] = []
    for i, raw in enumerate(items):
        where = f"boards[{i}]"
        if not isinstance(raw, dict):
            raise HardwareConfigError(f"{where}: must be a mapping")
        unknown = set(raw) - {"device", "name", "ports"}
        if unknown:
            raise HardwareConfigError(f"{where}: unknown field {sorted(unknown)[0]!r}")
        device = _str(raw.get("device"), f"{where}.device")
        ports_raw = raw.get("ports") or {}
        if not isinstance(ports_raw, dict):
            raise HardwareConfigError(f"{where}.ports: must be a mapping of port number to port")
        ports: dict[int, FxsConfig | FxoConfig | BriConfig] = {}
        for key, spec in ports_raw.items():
            try:
                index = int(key)
            except (TypeError, ValueError):
                raise HardwareConfigError(f"{where}.ports.{key}: port numbers are 0-{MAX_PORT}") from None
            if not 0 <= index <= MAX_PORT:
                raise HardwareConfigError(f"{where}.ports.{key}: port numbers are 0-{MAX_PORT}")
            ports[index] = _port(spec, f"{where}.ports.{key}")
        boards.append(BoardConfig(device, _str(raw.get("name", f"board{i}"), f"{where}.name"), ports))
    return boards


def _modems(items: list[Any]) -> list[ModemLineConfig]:
    modems: list[ModemLineConfig] = []
    for i, raw in enumerate(items):
        where = f"modems[{i}]"
        if not isinstance(raw, dict):
            raise HardwareConfigError(f"{where}: must be a mapping with device and did")
        unknown = set(raw) - {"device", "did", "trunk_name", "name", "cid_wait_s"}
        if unknown:
            raise HardwareConfigError(f"{where}: unknown field {sorted(unknown)[0]!r}")
        for required in ("device", "did"):
            if required not in raw:
                raise HardwareConfigError(f"{where}.{required}: required")
        modems.append(ModemLineConfig(
            device=_str(raw["device"], f"{where}.device"), did=_str(raw["did"], f"{where}.did"),
            trunk_name=_str(raw.get("trunk_name", "analog"), f"{where}.trunk_name"),
            name=_str(raw.get("name", f"modem{i}"), f"{where}.name"),
            cid_wait_s=_cid_wait(raw.get("cid_wait_s", CID_WAIT_S), f"{where}.cid_wait_s")))
    return modems


def parse_hardware(data: Any) -> HardwareConfig:
    """Check a loaded hardware.yaml document (boards and modems); raises HardwareConfigError."""
    if not isinstance(data, dict) or ("boards" not in data and "modems" not in data):
        raise HardwareConfigError("boards: required, a list (or modems:, a list)")
    for section in ("boards", "modems"):
        if section in data and not isinstance(data[section], list):
            raise HardwareConfigError(f"{section}: must be a list")
    cfg = HardwareConfig(_boards(data.get("boards", [])), _modems(data.get("modems", [])))
    # One serial device is one piece of hardware: a board and a modem cannot share it.
    owner = {b.device: f"boards[{i}]" for i, b in enumerate(cfg.boards)}
    for i, m in enumerate(cfg.modems):
        if m.device in owner:
            raise HardwareConfigError(f"modems[{i}].device: {m.device} is already used by {owner[m.device]}")
        owner[m.device] = f"modems[{i}]"
    for section, names in (("boards", [b.name for b in cfg.boards]), ("modems", [m.name for m in cfg.modems])):
        for i, name in enumerate(names):  # a reload matches boards and modems by name
            if name in names[:i]:
                raise HardwareConfigError(f"{section}[{i}].name: {name!r} is used twice")
    boards = [b.device for b in cfg.boards]
    for i, device in enumerate(boards):
        if device in boards[:i]:
            raise HardwareConfigError(f"boards[{i}].device: {device} is already used by boards[{boards.index(device)}]")
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
