"""The engine's hardware: line boards and voice modems from data/hardware.yaml, their ports and status.

Threads: each `BoardLink` posts events on its reader thread, each `VoiceModem` on its control
thread; audio goes straight to the audio relay, everything else is handed to the engine loop
with `call_soon` (sippy's ED2.callFromThread in the engine), where ports and channels run like
SIP channels do.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance.pbx.channel import Cause, Channel
from appliance.pbx.ports import MediaPort
from appliance.schema.errors import FieldError
from appliance.system.liveness import PartHealth
from hw import config as hwconfig
from hw.bri import BriChannelFactory, BriConfig, BriLinePort
from hw.frames import (
    Audio,
    BAudio,
    BusyTone,
    CallerId,
    Caps,
    DChan,
    Dtmf,
    Flash,
    Message,
    OffHookEvent,
    OnHookEvent,
    Polarity,
    PortKind,
    RingStart,
    RingStop,
    Status,
)
from hw.fxo import FxoConfig, FxoPort
from hw.fxs import FxsConfig, FxsPort
from hw.line import PORT_REMOVED, HwContext, LineChannel, LinePbx, LinePort
from hw.link import BoardGone, BoardLink, BoardRefused, BoardUp, LinkEvent, Received
from hw.modem_line import ModemLineFactory, ModemLinePort
from hw.relay import AudioRelay

log = logging.getLogger("plateau.hw")


def _ed2_call_soon(fn: Callable[[], None]) -> None:
    from sippy.Core.EventDispatcher import ED2

    ED2.callFromThread(fn)


class Board:
    """One configured board: its link and its ports."""

    def __init__(self, ctx: HwContext, cfg: hwconfig.BoardConfig, call_soon: Callable[[Callable[[], None]], None],
                 link_options: dict[str, Any]) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.call_soon = call_soon
        self.refused_version: int | None = None
        self.ctx = ctx
        self.link = BoardLink(cfg.device, self._on_link_event, **link_options)
        self.ports: dict[int, FxsPort | FxoPort | BriLinePort] = {}
        for index, pcfg in sorted(cfg.ports.items()):
            self.ports[index] = self._new_port(index, pcfg)

    def _new_port(self, index: int, pcfg: FxsConfig | FxoConfig | BriConfig) -> FxsPort | FxoPort | BriLinePort:
        if isinstance(pcfg, FxsConfig):
            return FxsPort(self.ctx, self.name, index, self.link.send, pcfg)
        if isinstance(pcfg, BriConfig):
            return BriLinePort(self.ctx, self.name, index, self.link.send, pcfg)
        return FxoPort(self.ctx, self.name, index, self.link.send, pcfg)

    # -- reload (engine loop) ---------------------------------------------------------------------
    def apply(self, cfg: hwconfig.BoardConfig) -> list[str]:
        """Take the board's new port list: unchanged ports (and their calls) stay as they are, a
        removed or changed port ends its calls with PORT_REMOVED, a new port comes into service
        at once when the board is up. Returns what changed, for the log and the reload answer."""
        changes: list[str] = []
        for index in sorted(self.ports):
            if cfg.ports.get(index) != self.ports[index].config:
                changes.append(f"{self.name} port {index} {'changed' if index in cfg.ports else 'removed'}")
                end_calls(self.ports.pop(index), PORT_REMOVED)
        added = {}
        for index, pcfg in sorted(cfg.ports.items()):
            if index not in self.ports:
                self.ports[index] = added[index] = self._new_port(index, pcfg)
                if not any(c.startswith(f"{self.name} port {index} ") for c in changes):
                    changes.append(f"{self.name} port {index} added")
        self.cfg = cfg
        caps = self.link.caps
        if added and self.link.is_up and caps is not None:
            self._ports_up(caps, added)
        return changes

    # -- reader thread ------------------------------------------------------------------------
    def _on_link_event(self, event: LinkEvent) -> None:
        if isinstance(event, Received) and isinstance(event.frame.message, Audio):
            port = self.ports.get(event.frame.message.port)
            if port is not None:
                port.audio_from_board(event.frame.message.ulaw)
            return
        if isinstance(event, Received) and isinstance(event.frame.message, BAudio):
            port = self.ports.get(event.frame.message.port)
            if isinstance(port, BriLinePort):
                port.b_audio_from_board(event.frame.message.b_channel, event.frame.message.ulaw)
            return
        self.call_soon(lambda: self._dispatch(event))

    # -- engine loop --------------------------------------------------------------------------
    def _dispatch(self, event: LinkEvent) -> None:
        try:
            if isinstance(event, BoardUp):
                self._board_up(event)
            elif isinstance(event, BoardGone):
                log.warning("%s: board gone (%s): releasing its calls", self.name, event.reason)
                for port in self.ports.values():
                    port.board_gone()
            elif isinstance(event, BoardRefused):
                self.refused_version = event.protocol_version
            else:
                self._message(event.frame.message)
        except Exception:  # one bad event must not stop the engine loop's other work
            log.exception("%s: handling %s", self.name, event)

    def _board_up(self, event: BoardUp) -> None:
        self.refused_version = None
        if event.again:  # our re-HELLO answered: nothing restarted, BRI stacks keep their calls
            self._ports_up(event.caps, {i: p for i, p in self.ports.items() if not isinstance(p, BriLinePort)})
        else:
            self._ports_up(event.caps, self.ports)

    def _ports_up(self, board_caps: Caps, ports: dict[int, FxsPort | FxoPort | BriLinePort]) -> None:
        caps = board_caps.ports
        for index, port in ports.items():
            want = (PortKind.FXS if isinstance(port, FxsPort) else PortKind.BRI if isinstance(port, BriLinePort)
                    else PortKind.FXO)
            if index >= len(caps) or caps[index].kind != want:
                have = caps[index].kind.name if index < len(caps) else "nothing"
                log.error("%s: port %d is configured %s but the board has %s there: unused", self.name, index,
                          want.name, have)
                continue
            if not caps[index].audio_on_link:
                log.error("%s: port %d carries no audio on the link (USB audio is not supported yet)",
                          self.name, index)
            if isinstance(port, BriLinePort):
                port.board_up(caps[index])  # its CAPS flags say one call (AUDIO) or two (BAUDIO)
            else:
                port.board_up()

    def _message(self, msg: Message) -> None:
        if isinstance(msg, Status):
            for index, st in enumerate(msg.ports):
                port = self.ports.get(index)
                if port is not None:
                    port.board_state, port.line, port.alarms = st.state, st.line, st.alarms
            return
        port = self.ports.get(msg.port)
        if port is None:
            return
        if isinstance(port, FxsPort):
            self._fxs(port, msg)
        elif isinstance(port, BriLinePort):
            if isinstance(msg, DChan):
                port.dchan(msg.lapd)  # its timers are re-armed on the engine's scheduler by the port
        else:
            self._fxo(port, msg)

    @staticmethod
    def _fxs(port: FxsPort, msg: Message) -> None:
        if isinstance(msg, OffHookEvent):
            port.off_hook()
        elif isinstance(msg, OnHookEvent):
            port.on_hook()
        elif isinstance(msg, Flash):
            port.flash()
        elif isinstance(msg, Dtmf):
            port.dtmf(msg.digit, msg.duration_ms)

    @staticmethod
    def _fxo(port: FxoPort, msg: Message) -> None:
        if isinstance(msg, RingStart):
            port.ring_start()
        elif isinstance(msg, CallerId):
            port.caller_id(msg.number, msg.name)
        elif isinstance(msg, RingStop):
            port.ring_stop()
        elif isinstance(msg, Polarity):
            port.polarity(msg.reversed)
        elif isinstance(msg, BusyTone):
            port.busy_tone()
        elif isinstance(msg, OnHookEvent):
            port.line_released()
        elif isinstance(msg, Dtmf):
            port.dtmf(msg.digit, msg.duration_ms)

    def status(self) -> dict[str, Any]:
        out = self.link.status()
        out["name"] = self.name
        if self.refused_version is not None:
            out["refused_protocol_version"] = self.refused_version
        out["ports"] = [p.status() for p in self.ports.values()]
        return out


def end_calls(port: LinePort, cause: Cause) -> None:
    """A port leaves the configuration: release its line as its kind requires (FXO on-hook, ISDN
    DISCONNECT, modem ATH, congestion tone to an FXS phone) and tell the PBX `cause`."""
    chans: list[LineChannel] = []
    if isinstance(port, BriLinePort):
        chans = list(port.calls)
    elif isinstance(port, FxsPort | FxoPort | ModemLinePort) and port.channel is not None:
        chans = [port.channel]
    for chan in chans:
        log.warning("%s: call %s ended: %s", port.label(), chan.id, cause)
        port.channel_ended(chan, cause)
        chan.remote_gone(cause)
    if isinstance(port, BriLinePort):
        port.close()
    elif isinstance(port, ModemLinePort):
        port.close()


class HardwareManager:
    """Everything under data/hardware.yaml, started with the engine (see module docstring)."""

    def __init__(self, pbx: LinePbx, media: MediaPort, schedule: Callable[[float, Callable[[], None]], Any], path: Path,
                 *, call_soon: Callable[[Callable[[], None]], None] | None = None,
                 channels_by_leg: dict[str, Channel] | None = None, media_host: str = "127.0.0.1",
                 link_options: dict[str, Any] | None = None, modem_options: dict[str, Any] | None = None) -> None:
        self.pbx = pbx
        self.path = Path(path)
        self.error: str | None = None
        self.errors: tuple[FieldError, ...] = ()  # the same problems as data, each with its path
        self.relay = AudioRelay(media_host)
        self.ctx = HwContext(pbx, media, schedule, self.relay, media_host,
                             channels_by_leg if channels_by_leg is not None else {})
        self.boards: list[Board] = []
        self.modems: list[ModemLinePort] = []
        self._started = False
        try:
            configs = hwconfig.load_hardware(self.path)
        except (hwconfig.HardwareConfigError, OSError) as exc:
            # A typo in hardware.yaml must not keep the SIP side down: the error shows in the status.
            self.error = str(exc)
            self.errors = exc.errors if isinstance(exc, hwconfig.HardwareConfigError) else ()
            log.error("hardware configuration %s not used: %s", self.path, exc)
            configs = hwconfig.HardwareConfig()
        soon = call_soon or _ed2_call_soon
        self._soon = soon
        self._link_options = dict(link_options or {})
        self._modem_options = modem_options
        self.boards = [Board(self.ctx, c, soon, dict(self._link_options)) for c in configs.boards]
        self.modems = [ModemLinePort(self.ctx, m, soon, modem_options) for m in configs.modems]

    # -- reload (engine loop) ---------------------------------------------------------------------
    def apply(self, configs: hwconfig.HardwareConfig) -> list[str]:
        """A reloaded hardware.yaml, already checked (hw/reload.py). Boards and modems by name: an
        unchanged one is untouched, with its calls; a removed one is closed and its calls end with
        PORT_REMOVED; a board whose device changed is a new board; on a kept board only the ports
        that differ change (Board.apply)."""
        changes: list[str] = []
        wanted = {c.name: c for c in configs.boards}
        for board in list(self.boards):
            cfg = wanted.get(board.name)
            if cfg is None or cfg.device != board.cfg.device:
                changes.append(f"board {board.name} removed" if cfg is None else f"board {board.name} moved")
                self.boards.remove(board)
                self._drop_board(board)
        have = {b.name: b for b in self.boards}
        for cfg in configs.boards:
            kept = have.get(cfg.name)
            if kept is not None:
                changes += kept.apply(cfg)
                continue
            board = Board(self.ctx, cfg, self._soon, dict(self._link_options))
            self.boards.append(board)
            changes.append(f"board {cfg.name} added")
            if self._started:
                board.link.start()
        wanted_modems = {m.name: m for m in configs.modems}
        for modem in list(self.modems):
            if wanted_modems.get(modem.config.name) != modem.config:
                changes.append(f"modem {modem.config.name} "
                               f"{'changed' if modem.config.name in wanted_modems else 'removed'}")
                self.modems.remove(modem)
                end_calls(modem, PORT_REMOVED)
        kept_modems = {m.config.name for m in self.modems}
        for mcfg in configs.modems:
            if mcfg.name not in kept_modems:
                modem = ModemLinePort(self.ctx, mcfg, self._soon, self._modem_options)
                self.modems.append(modem)
                if not any(c == f"modem {mcfg.name} changed" for c in changes):
                    changes.append(f"modem {mcfg.name} added")
                if self._started:
                    modem.start()
        self.error = None
        for change in changes:
            log.info("hardware.yaml reloaded: %s", change)
        return changes

    @staticmethod
    def _drop_board(board: Board) -> None:
        for port in board.ports.values():
            end_calls(port, PORT_REMOVED)
        board.link.close()

    def start(self) -> HardwareManager:
        """Open every board and modem and offer their ports to the PBX (wrapping its ChannelFactory)."""
        if not self._started:
            self._started = True
            self.pbx.factory = BriChannelFactory(ModemLineFactory(self.pbx.factory, self), self)
            for board in self.boards:
                board.link.start()
            for modem in self.modems:
                modem.start()
        return self

    def stop(self) -> None:
        for board in self.boards:
            board.link.close()
            for port in board.ports.values():
                if isinstance(port, BriLinePort):
                    port.close()
        for modem in self.modems:
            modem.close()
        self.relay.stop()

    def health(self) -> list[PartHealth]:
        """Every hw thread's liveness: each board's link reader and keeper, each modem's control and
        reader threads, the audio relay (the engine's supervisor gathers them)."""
        out = [self.relay.health()]
        for board in self.boards:
            out += board.link.health()
        for modem in self.modems:
            out += modem.modem.health()
        return out

    def ports(self) -> list[LinePort]:
        return [p for b in self.boards for p in b.ports.values()]

    def fxs_ports(self, extension: str) -> list[FxsPort]:
        return [p for p in self.ports() if isinstance(p, FxsPort) and p.config.extension == extension]

    def fxo_ports(self, trunk_name: str) -> list[FxoPort]:
        return [p for p in self.ports() if isinstance(p, FxoPort) and p.config.trunk_name == trunk_name]

    def bri_ports(self, trunk_name: str) -> list[BriLinePort]:
        return [p for p in self.ports() if isinstance(p, BriLinePort) and p.config.trunk_name == trunk_name]

    def modem_ports(self, trunk_name: str) -> list[ModemLinePort]:
        return [m for m in self.modems if m.config.trunk_name == trunk_name]

    def status(self) -> dict[str, Any]:
        """Boards, ports, modems, states, line figures, alarms, counters (JSON-able)."""
        return {"config": str(self.path), "error": self.error, "boards": [b.status() for b in self.boards],
                "modems": [m.status() for m in self.modems],
                "errors": [{"loc": list(e.loc), "msg": e.msg} for e in self.errors]}

