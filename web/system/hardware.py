"""System › Hardware (admin only): line boards, their ports, voice modems and USB headsets, as the engine
reports them.

The engine's `GET /v1/hardware` (hw/manager.py HardwareManager.status) is turned into a view
model here so the page and its 5 s refresh (`hardware.json`, the same fragment re-rendered) show
one thing. Keys this page does not know yet (new board fields, `modems`, ...) are shown as plain
facts rather than dropped: the engine's hardware support grows faster than this page.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, jsonify, render_template
from werkzeug.wrappers import Response

from appliance.api.facade import ApiError, ApiUnavailable
from appliance.schema.errors import dotted
from appliance.store.db import Store
from web.context import engine, login_required, store

REFRESH_S = 5

# Link states (hw/link.py LinkState) as an admin reads them: (label, dot class, explanation).
BOARD_STATES: dict[str, tuple[str, str, str]] = {
    "up": ("up", "ok", "connected and answering"),
    "handshake": ("connecting", "warn", "device open, waiting for the board to answer"),
    "closed": ("gone", "bad", "no device: unplugged, or it cannot be opened"),
    "gone": ("gone", "bad", "no device: unplugged, or it cannot be opened"),
    "refused": ("refused", "bad", "the board speaks another protocol version: its ports are unused"),
}
# Port and modem states (hw/fxs.py FxsState, hw/fxo.py FxoState, hw/modem.py ModemState) -> dot class.
LINE_STATE_CLASS: dict[str, str] = {
    "idle": "ok", "out-of-service": "bad", "offline": "bad",
    "ringing": "warn", "incoming": "warn", "dialtone": "warn", "transfer-dial": "warn", "lockout": "warn",
    "rejected": "warn", "answering": "warn", "dialing": "warn", "hungup": "warn",
    "releasing": "warn", "call": "busy", "seized": "busy", "voice": "busy", "connected": "busy",
}
# Hook state the board itself reports in STATUS (hw/PROTOCOL.md "Port states in STATUS").
BOARD_HOOK: dict[str, dict[int, str]] = {
    "fxs": {0: "on-hook", 1: "off-hook", 2: "ringing"},
    "fxo": {0: "idle", 1: "ringing", 2: "off-hook"},
}
# STATUS alarm bits (hw/PROTOCOL.md STATUS: bit 0 no line, bit 1 over-current, bit 2 over-temperature).
ALARM_BITS = ("no line", "over-current", "over-temperature")
MAIN_COUNTERS = ("crc_errors", "framing_errors", "seq_gaps")

_BOARD_KEYS = {"name", "device", "state", "serial", "firmware", "last_error", "counters", "ports",
               "refused_protocol_version"}
_PORT_KEYS = {"port", "kind", "extension", "did", "trunk", "state", "board_state", "loop_current_ma", "line_volts",
              "alarms", "channel"}
_MODEM_KEYS = {"name", "kind", "device", "did", "trunk", "extension", "state", "modem_state", "error", "channel",
               "counters"}
_HEADSET_KEYS = {"extension", "process", "pid", "restarts", "registered", "state", "peer", "since", "last_exit",
                 "error"}
_TOP_KEYS = {"config", "error", "errors", "boards", "modems", "headsets", "headsets_error"}

# A headset's process (hw/headsets.py ProcessState) as an admin reads it: (dot/badge class, explanation).
HEADSET_PROCESS: dict[str, tuple[str, str]] = {
    "up": ("ok", "running and registered: it takes calls"),
    "starting": ("warn", "started, registering with the PBX"),
    "backoff": ("warn", "its process exited: restarting it shortly (a headset unplugged is retried until it is back)"),
    "failed": ("bad", "the PBX refused its credentials: not retried until the password in data/headsets.yaml "
                      "is fixed and the engine restarted"),
    "stopped": ("idle", "stopped"),
    "idle": ("idle", "not started yet"),
}
# A headset's call state (hw/headset.py HeadsetState) -> dot class.
HEADSET_CALL_CLASS: dict[str, str] = {
    "idle": "ok", "registering": "warn", "ringing": "warn", "dialing": "warn", "talking": "busy",
    "stopped": "idle", "closed": "idle",
}


@dataclass
class PortView:
    """One port row: what it is, what it is wired to in the PBX, and how its line looks."""

    index: Any
    kind: str
    mapped_to: str
    mapped_note: str
    mapped_warn: bool
    state: str
    state_class: str
    hook: str
    line: str
    alarms: list[str]
    channel: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModemView:
    """One voice modem used as an analog line (hw/modem_line.py ModemLinePort.status)."""

    name: str
    device: str
    mapped_to: str
    mapped_note: str
    state: str
    state_class: str
    driver_state: str
    error: str
    channel: str
    counters: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class HeadsetView:
    """One USB headset: its supervised process and the softphone's call (hw/headsets.py HeadsetRecord)."""

    extension: str
    mapped_note: str
    mapped_warn: bool
    process: str
    process_class: str
    process_note: str
    since: str
    pid: str
    registered: bool
    call_state: str
    call_class: str
    peer: str
    restarts: int
    last_exit: str
    error: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class BoardView:
    name: str
    device: str
    state: str
    state_class: str
    state_note: str
    firmware: str
    serial: str
    last_error: str
    counters: dict[str, Any]
    ports: list[PortView]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def counter_trouble(self) -> bool:
        return any(_positive(self.counters.get(k)) for k in MAIN_COUNTERS)


@dataclass
class HardwareView:
    """What the Hardware tab shows; `engine_error` is set (and nothing else) when the engine is down."""

    engine_up: bool
    engine_error: str = ""
    configured: bool = False
    config_path: str = ""
    config_error: str = ""
    config_errors: list[tuple[str, str]] = field(default_factory=list)  # (path in hardware.yaml, what is wrong)
    boards: list[BoardView] = field(default_factory=list)
    modems: list[ModemView] = field(default_factory=list)
    headsets: list[HeadsetView] = field(default_factory=list)
    headsets_error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    updated_at: float = 0.0


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def alarm_words(alarms: Any) -> list[str]:
    """The STATUS alarm bitmask (or a list the engine already spelled out) as words.

    3 -> ["no line", "over-current"]; bits this page does not know are named by number.
    """
    if alarms is None or alarms == 0 or alarms == []:
        return []
    if isinstance(alarms, int) and not isinstance(alarms, bool):
        words = [w for bit, w in enumerate(ALARM_BITS) if alarms & (1 << bit)]
        words += [f"alarm bit {bit}" for bit in range(len(ALARM_BITS), alarms.bit_length()) if alarms & (1 << bit)]
        return words
    if isinstance(alarms, (list, tuple)):
        return [str(a) for a in alarms]
    return [str(alarms)]


def format_value(value: Any) -> str:
    """Any JSON value as short text for the generic fact lists and the modem table."""
    if value is None or value == "":
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {format_value(v)}" for k, v in value.items()) or "–"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value) or "–"
    return str(value)


def line_state_class(state: Any) -> str:
    """The dot colour of a port or modem state: ok, warn, busy, bad, or idle for one not known here."""
    return LINE_STATE_CLASS.get(str(state), "idle") if state else "idle"


def duration_text(seconds: Any) -> str:
    """How long ago, short: 42 s, 5 min, 2 h 3 min, 3 d 4 h; "" for a value that is not a duration."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
        return ""
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _line_figure(port: dict[str, Any]) -> str:
    """FXO: line voltage (an idle line is ~48 V, ~0 V means no line); FXS: loop current (off-hook ~20-40 mA)."""
    if isinstance(port.get("line_volts"), (int, float)):
        return f"{port['line_volts']:.1f} V"
    if isinstance(port.get("loop_current_ma"), (int, float)):
        return f"{port['loop_current_ma']:.1f} mA"
    return "–"


def _mapping(port: dict[str, Any], extensions: dict[str, str]) -> tuple[str, str, bool]:
    """(what the port is in the PBX, a note, whether the note is a warning): an extension for a phone
    port, a DID on a trunk for a line."""
    ext = port.get("extension")
    if ext:
        ext = str(ext)
        if ext in extensions:
            return f"Extension {ext}", extensions[ext], False
        return f"Extension {ext}", "not configured in Admin: calls to it fail", True
    did, trunk = port.get("did"), port.get("trunk")
    if did or trunk:
        return (f"DID {did}" if did else "Line"), (f"trunk {trunk}" if trunk else ""), False
    return "–", "", False


def _port_view(raw: Any, extensions: dict[str, str]) -> PortView:
    port = raw if isinstance(raw, dict) else {"state": raw}
    kind = str(port.get("kind") or "?").lower()
    state = str(port.get("state") or "unknown")
    in_service = state != "out-of-service"
    hook = ""
    if isinstance(port.get("board_state"), int) and in_service:
        hook = BOARD_HOOK.get(kind, {}).get(port["board_state"], f"state {port['board_state']}")
    mapped, note, warn = _mapping(port, extensions)
    return PortView(
        index=port.get("port", "?"), kind=kind.upper(), mapped_to=mapped, mapped_note=note, mapped_warn=warn,
        state=state, state_class=line_state_class(state), hook="" if hook == state else hook,
        line=_line_figure(port) if in_service else "–",  # the last reading of a board that is gone is stale
        alarms=alarm_words(port.get("alarms")), channel=str(port.get("channel") or ""),
        extra={k: v for k, v in port.items() if k not in _PORT_KEYS})


def _board_view(raw: dict[str, Any], extensions: dict[str, str]) -> BoardView:
    state = str(raw.get("state") or "unknown")
    label, cls, note = BOARD_STATES.get(state, (state, "idle", ""))
    if state == "refused" and raw.get("refused_protocol_version") is not None:
        note = f"the board speaks protocol version {raw['refused_protocol_version']}, not ours: its ports are unused"
    counters = raw.get("counters") if isinstance(raw.get("counters"), dict) else {}
    return BoardView(
        name=str(raw.get("name") or "board"), device=str(raw.get("device") or ""), state=label, state_class=cls,
        state_note=note, firmware=str(raw.get("firmware") or ""), serial=str(raw.get("serial") or ""),
        last_error=str(raw.get("last_error") or ""), counters=dict(counters or {}),
        ports=[_port_view(p, extensions) for p in raw.get("ports") or []],
        extra={k: v for k, v in raw.items() if k not in _BOARD_KEYS})


def _modem_view(raw: Any, index: int, extensions: dict[str, str]) -> ModemView:
    modem = raw if isinstance(raw, dict) else {"state": raw}
    state = str(modem.get("state") or "unknown")
    driver = str(modem.get("modem_state") or "")
    mapped, note, _warn = _mapping(modem, extensions)
    counters = modem.get("counters") if isinstance(modem.get("counters"), dict) else {}
    return ModemView(
        name=str(modem.get("name") or f"modem{index}"), device=str(modem.get("device") or ""), mapped_to=mapped,
        mapped_note=note, state=state, state_class=line_state_class(state),
        driver_state="" if driver == state else driver, error=str(modem.get("error") or ""),
        channel=str(modem.get("channel") or ""), counters=dict(counters or {}),
        extra={k: v for k, v in modem.items() if k not in _MODEM_KEYS})


def _headset_view(raw: Any, extensions: dict[str, str], now: float) -> HeadsetView:
    hs = raw if isinstance(raw, dict) else {"process": raw}
    ext = str(hs.get("extension") or "?")
    _mapped, note, warn = _mapping({"extension": ext}, extensions)
    process = str(hs.get("process") or "unknown")
    cls, process_note = HEADSET_PROCESS.get(process, ("idle", ""))
    up = process == "up"
    running = process in ("up", "starting")  # a pid outside these is the last, exited, process's
    since = hs.get("since")
    call = str(hs.get("state") or "") if up else ""  # a process that is not up has no call: its last report is stale
    restarts = hs.get("restarts")
    last_exit = hs.get("last_exit")
    return HeadsetView(
        extension=ext, mapped_note=note, mapped_warn=warn, process=process, process_class=cls,
        process_note=process_note,
        since=duration_text(now - since) if isinstance(since, (int, float)) and not isinstance(since, bool) else "",
        pid=str(hs["pid"]) if running and hs.get("pid") is not None else "",
        registered=hs.get("registered") is True, call_state=call,
        call_class=HEADSET_CALL_CLASS.get(call, "idle"), peer=str(hs.get("peer") or "") if up else "",
        restarts=restarts if isinstance(restarts, int) and not isinstance(restarts, bool) else 0,
        last_exit="" if last_exit is None else str(last_exit), error=str(hs.get("error") or ""),
        extra={k: v for k, v in hs.items() if k not in _HEADSET_KEYS})


def _config_errors(raw: Any) -> list[tuple[str, str]]:
    """hardware.yaml's problems as the engine lists them ({"loc": [...], "msg": ...}), each with its path."""
    out = []
    for item in raw if isinstance(raw, list) else []:
        loc, msg = (item.get("loc"), item.get("msg")) if isinstance(item, dict) else (None, None)
        if isinstance(loc, list) and all(isinstance(p, (str, int)) for p in loc) and isinstance(msg, str):
            out.append((dotted(loc), msg))
    return out


def build_view(status: dict[str, Any], extensions: dict[str, str]) -> HardwareView:
    """The engine's hardware status (HardwareManager.status shape) as the page's view model."""
    view = HardwareView(engine_up=True, updated_at=time.time())
    view.configured = status.get("config") is not None
    view.config_path = str(status.get("config") or "")
    view.config_error = str(status.get("error") or "")
    view.config_errors = _config_errors(status.get("errors"))
    view.boards = [_board_view(b, extensions) for b in status.get("boards") or [] if isinstance(b, dict)]
    modems = status.get("modems")
    view.modems = [_modem_view(m, i, extensions) for i, m in enumerate(modems if isinstance(modems, list) else [])]
    headsets = status.get("headsets")
    view.headsets = [_headset_view(h, extensions, view.updated_at)
                     for h in (headsets if isinstance(headsets, list) else [])]
    view.headsets_error = str(status.get("headsets_error") or "")
    view.configured = view.configured or bool(view.boards or view.modems or view.headsets or view.headsets_error)
    view.extra = {k: v for k, v in status.items() if k not in _TOP_KEYS}
    return view


def collect(api: Any, st: Store) -> HardwareView:
    """Ask the engine (it may be down: that is a state of the page, not an error)."""
    try:
        status = api.request("GET", "/v1/hardware")
    except ApiUnavailable as exc:
        return HardwareView(engine_up=False, engine_error=f"The engine is not running ({exc.message}).",
                            updated_at=time.time())
    except ApiError as exc:
        return HardwareView(engine_up=False, engine_error=f"The engine answered with an error: {exc.message}",
                            updated_at=time.time())
    if not isinstance(status, dict):
        return HardwareView(engine_up=False, engine_error="The engine sent a hardware status this page cannot read.",
                            updated_at=time.time())
    extensions = {e.number: e.name for e in st.extensions()}
    return build_view(status, extensions)


def hardware_page() -> str:
    """The Hardware tab."""
    return render_template("system/hardware.html", hw=collect(engine(), store()), refresh_s=REFRESH_S)


def hardware_json() -> Response:
    """The refresh: the same fragment re-rendered, with the engine's raw status for scripts."""
    view = collect(engine(), store())
    html = render_template("system/_hardware.html", hw=view)
    resp = jsonify(engine_up=view.engine_up, configured=view.configured, updated_at=view.updated_at, html=html)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def register(bp: Blueprint) -> None:
    """Add the Hardware routes to the System blueprint (admin only)."""
    bp.add_app_template_filter(format_value, "hw_value")
    bp.add_url_rule("/hardware", "hardware", login_required("admin")(hardware_page), methods=["GET"])
    bp.add_url_rule("/hardware.json", "hardware_json", login_required("admin")(hardware_json), methods=["GET"])
