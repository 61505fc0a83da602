"""The media process: one uvloop event loop, the engine, the RTP sockets and the 20 ms clock.

Started by ``MediaClient.start`` with two inherited SOCK_SEQPACKET sockets: control (request /
reply) and events. EOF on the control socket means the PBX process is gone: the server exits.
All RTP sockets sit in one private epoll set whose descriptor is the only RTP reader the event
loop watches: one callback reads every ready socket (one ``recvfrom`` each, raw bytes to the engine,
no decoding per packet), instead of one loop callback per datagram (measured: the per-datagram
callback cost more than the engine's own receive work). The tick runs at absolute monotonic
deadlines, so it never drifts; a batch of datagrams that ends past the deadline runs the tick at
once rather than after the loop's next poll.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import select
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

import uvloop

from appliance.media.engine import FRAME_S, MediaEngine
from appliance.media.events import MediaEvent, event_to_dict
from appliance.media.leg import Leg
from appliance.media.protocol import MAX_MESSAGE, MediaError, decode, encode, source_from_wire
from appliance.media.transport import PortError, PortPool

log = logging.getLogger("plateau.media")
MAX_CATCH_UP_TICKS = 5  # beyond this many frames behind, skip ahead instead of bursting
MAX_BATCH = 4096  # ready RTP sockets taken per epoll call


class MediaServer:
    """Glue between the control socket, the UDP sockets and the engine."""

    def __init__(self, ctrl: socket.socket, events: socket.socket, bind_ip: str, port_min: int,
                 port_max: int, rtp_timeout_s: float, first_id: int = 1) -> None:
        self.ctrl = ctrl
        self.events = events
        self.pool = PortPool(bind_ip, port_min, port_max)
        self.engine = MediaEngine(self._emit, rtp_timeout_s=rtp_timeout_s, first_id=first_id)
        self._socks: dict[str, tuple[int, socket.socket, socket.socket]] = {}
        self._reserved: dict[int, tuple[socket.socket, socket.socket]] = {}
        self.dropped_events = 0
        # control traffic, for engine_stats: datagrams received, commands run, commands failed
        self.requests = self.commands = self.command_failures = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._deadline = 0.0
        self._tick_handle: asyncio.TimerHandle | None = None
        # fd -> (recvfrom, leg) of every RTP socket in the private epoll set
        self._rtp_poll = select.epoll()
        self._rtp_fds: dict[int, tuple[Callable[[int], tuple[bytes, Any]], Leg]] = {}

    def _emit(self, ev: MediaEvent) -> None:
        try:
            self.events.send(encode(event_to_dict(ev)))
        except (BlockingIOError, BrokenPipeError, ConnectionResetError):
            self.dropped_events += 1

    async def run(self) -> None:
        """Serve until the control socket closes or ``shutdown`` is requested."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stopped = loop.create_future()
        self.ctrl.setblocking(False)
        self.events.setblocking(False)
        loop.add_reader(self.ctrl.fileno(), self._on_control)
        loop.add_reader(self._rtp_poll.fileno(), self._on_rtp_ready)
        self._deadline = time.monotonic() + FRAME_S
        self._tick_handle = loop.call_later(FRAME_S, self._on_tick)
        self.ctrl.send(encode({"ok": True, "result": "ready"}))
        try:
            await self._stopped
        finally:
            loop.remove_reader(self.ctrl.fileno())
            loop.remove_reader(self._rtp_poll.fileno())
            if self._tick_handle is not None:
                self._tick_handle.cancel()
            for leg_id in list(self._socks):
                self._close_leg(leg_id)
            for port, socks in self._reserved.items():
                for sock in socks:
                    sock.close()
                self.pool.release(port)
            self._reserved.clear()
            self._rtp_poll.close()
            self.engine.close()

    def _stop(self) -> None:
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)

    # ------------------------------------------------------------------ clock

    def _on_tick(self) -> None:
        # One tick per callback, so datagrams and control requests are served between ticks
        # even when the engine runs behind; far behind, skip ahead rather than burst.
        now = time.monotonic()
        behind = int((now - self._deadline) / FRAME_S)
        if behind > MAX_CATCH_UP_TICKS:
            self.engine.count_skipped(behind)
            self._deadline += behind * FRAME_S
        self.engine.tick(now, self._deadline)
        self._deadline += FRAME_S
        if self._loop is not None:
            self._tick_handle = self._loop.call_later(max(0.0, self._deadline - time.monotonic()),
                                                      self._on_tick)

    def _tick_if_due(self) -> None:
        """Run an overdue tick now (from an I/O callback) instead of from its timer."""
        if time.monotonic() >= self._deadline and self._tick_handle is not None:
            self._tick_handle.cancel()
            self._on_tick()

    # ------------------------------------------------------------------ control

    def _on_control(self) -> None:
        # Drain every queued request: commands come in bursts of several per call set-up.
        while True:
            try:
                data = self.ctrl.recv(MAX_MESSAGE)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:  # parent gone
                log.warning("control socket closed: media process stopping")
                self._stop()
                return
            self._serve(data)

    def _serve(self, data: bytes) -> None:
        noreply = False
        op = "?"
        self.requests += 1
        try:
            req = decode(data)
            op = str(req.get("op"))
            noreply = bool(req.get("noreply"))
            if op == "batch":
                result = self._run_batch(req.get("cmds"))
            else:
                self.commands += 1
                result = self._dispatch(op, req.get("args") or {})
            reply: dict[str, Any] = {"ok": True, "result": result}
        except (MediaError, PortError, TypeError, ValueError, KeyError) as exc:
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        if not reply["ok"]:
            self.command_failures += 1
        if noreply:
            if not reply["ok"]:
                log.warning("media command %s failed: %s", op, reply["error"])
            return
        try:
            self.ctrl.send(encode(reply))
        except OSError as exc:
            log.warning("cannot answer the PBX (%s): media process stopping", exc)
            self._stop()

    def _run_batch(self, cmds: object) -> list[str | None]:
        """Run a batch's commands in order, each alone: one that fails is logged, as a single
        no-reply command is, and the next still runs. Returns each one's error (None: done)."""
        if not isinstance(cmds, list):
            raise MediaError("batch: cmds must be a list")
        errors: list[str | None] = []
        for cmd in cmds:
            self.commands += 1
            op = str(cmd.get("op")) if isinstance(cmd, dict) else "?"
            try:
                if not isinstance(cmd, dict) or op == "batch":
                    raise MediaError("a batch holds command objects, not batches")
                args = cmd.get("args") or {}
                if not isinstance(args, dict):
                    raise MediaError("args must be an object")
                self._dispatch(op, args)
                errors.append(None)
            except (MediaError, PortError, TypeError, ValueError, KeyError, AttributeError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                log.warning("media command %s failed: %s", op, error)
                self.command_failures += 1
                errors.append(error)
        return errors

    def _dispatch(self, op: str, a: dict[str, Any]) -> Any:
        e = self.engine
        if op == "reserve_ports":
            return self._reserve_ports(int(a["count"]))
        if op == "claim_ports":
            return self._claim_ports([int(p) for p in a["ports"]])
        if op == "create_leg":
            return self._create_leg(a["leg_id"], a.get("port"))
        if op == "configure_leg":
            remote = a.get("remote")
            e.configure_leg(a["leg_id"], tuple(remote) if remote else None, a["codec"],
                            int(a["payload_type"]), a.get("dtmf_payload_type"),
                            a.get("direction", "sendrecv"), bool(a.get("detect_inband_dtmf")))
            return None
        if op == "destroy_leg":
            e.remove_leg(a["leg_id"])
            self._close_leg(a["leg_id"])
            return None
        if op == "bridge":
            return e.bridge(a["bridge_id"], list(a["leg_ids"]))
        if op == "unbridge":
            return e.unbridge(a["leg_id"])
        if op == "destroy_bridge":
            return e.destroy_bridge(a["bridge_id"])
        if op == "play":
            return e.play(a["leg_id"], source_from_wire(a["source"]), bool(a.get("loop", True)),
                          a.get("play_id"))
        if op == "stop_play":
            return e.stop_play(a["leg_id"])
        if op == "record":
            return e.record(a["target"], a["path"], a.get("rec_id"))
        if op == "stop_record":
            return e.stop_record(a["rec_id"])
        if op == "record_parties":
            return e.record_parties(a["path"], [str(i) for i in a["legs"]], bool(a["stereo"]),
                                    a.get("rec_id"))
        if op == "record_set_party":
            return e.record_set_party(a["rec_id"], int(a["index"]), str(a["leg_id"]))
        if op == "pause_record":
            return e.pause_record(a["rec_id"])
        if op == "resume_record":
            return e.resume_record(a["rec_id"])
        if op == "monitor":
            return e.monitor(a["leg_id"], [str(i) for i in a["hears"]],
                             [str(i) for i in a["whisper_to"]])
        if op == "unmonitor":
            return e.unmonitor(a["leg_id"])
        if op == "send_dtmf":
            return e.send_dtmf(a["leg_id"], a["digit"], int(a.get("duration_ms", 100)))
        if op == "detect_machine":
            return e.detect_machine(a["leg_id"], a.get("params") or None)
        if op == "stop_detect_machine":
            return e.stop_detect_machine(a["leg_id"])
        if op == "leg_stats":
            return e.leg_stats(a["leg_id"])
        if op == "engine_stats":
            stats = e.engine_stats()
            stats["dropped_events"] = self.dropped_events
            stats["control"] = {"requests": self.requests, "commands": self.commands,
                                "failures": self.command_failures}
            return stats
        if op == "ping":
            return "pong"
        if op == "shutdown":
            assert self._loop is not None
            self._loop.call_soon(self._stop)
            return None
        raise MediaError(f"unknown operation {op!r}")

    def _reserve_ports(self, count: int) -> list[int]:
        """Bind up to `count` port pairs now, for create_leg calls that then need no reply."""
        ports = []
        for _ in range(count):
            try:
                port, rtp_sock, rtcp_sock = self.pool.allocate()
            except PortError:
                break
            self._reserved[port] = (rtp_sock, rtcp_sock)
            ports.append(port)
        return ports

    def _claim_ports(self, ports: list[int]) -> list[int]:
        """Bind these exact pairs (the legs of a previous media process, which the far ends
        keep sending to); returns the ones that could be bound."""
        got = []
        for port in ports:
            try:
                rtp_sock, rtcp_sock = self.pool.claim(port)
            except PortError as exc:
                log.warning("cannot re-create RTP port %d: %s", port, exc)
                continue
            self._reserved[port] = (rtp_sock, rtcp_sock)
            got.append(port)
        return got

    def _create_leg(self, leg_id: str, port: int | None = None) -> int:
        if leg_id in self.engine.legs:
            raise MediaError(f"leg {leg_id!r} exists")
        if port is not None:
            if port not in self._reserved:
                raise MediaError(f"port {port} was not reserved")
            rtp_sock, rtcp_sock = self._reserved.pop(port)
        else:
            port, rtp_sock, rtcp_sock = self.pool.allocate()
        leg = self.engine.add_leg(leg_id, port, rtp_sock.sendto, rtcp_sock.sendto)
        assert self._loop is not None
        self._rtp_fds[rtp_sock.fileno()] = (rtp_sock.recvfrom, leg)
        self._rtp_poll.register(rtp_sock.fileno(), select.EPOLLIN)
        self._loop.add_reader(rtcp_sock.fileno(), self._on_rtcp, rtcp_sock, leg)
        self._socks[leg_id] = (port, rtp_sock, rtcp_sock)
        return port

    def _close_leg(self, leg_id: str) -> None:
        item = self._socks.pop(leg_id, None)
        if item is None:
            return
        port, rtp_sock, rtcp_sock = item
        assert self._loop is not None
        self._rtp_fds.pop(rtp_sock.fileno(), None)
        self._rtp_poll.unregister(rtp_sock.fileno())
        rtp_sock.close()
        self._loop.remove_reader(rtcp_sock.fileno())
        rtcp_sock.close()
        self.pool.release(port)

    # ------------------------------------------------------------------ datagrams

    def _on_rtp_ready(self) -> None:
        """Read one datagram from every ready RTP socket (level-triggered: a socket with more
        queued is reported again by the next poll), then run the tick if it is due."""
        try:
            ready = self._rtp_poll.poll(0, MAX_BATCH)
        except InterruptedError:
            return
        fds, received = self._rtp_fds, self.engine.rtp_received
        # one clock read per batch: every datagram in it was queued before the poll returned
        now = time.monotonic()
        for fd, _ in ready:
            item = fds.get(fd)
            if item is None:
                continue
            try:
                data, addr = item[0](2048)
            except OSError:  # EAGAIN, or an ICMP error reported on the socket
                continue
            received(item[1], data, addr, now)
        self._tick_if_due()

    def _on_rtcp(self, sock: socket.socket, leg: Leg) -> None:
        try:
            data, addr = sock.recvfrom(2048)
        except OSError:
            return
        self.engine.rtcp_received(leg, data, addr, time.monotonic())


def main(argv: list[str] | None = None) -> None:
    """Entry point of the media process."""
    p = argparse.ArgumentParser(description="Plateau media engine process")
    p.add_argument("--ctrl-fd", type=int, required=True)
    p.add_argument("--event-fd", type=int, required=True)
    p.add_argument("--bind-ip", required=True)
    p.add_argument("--port-min", type=int, required=True)
    p.add_argument("--port-max", type=int, required=True)
    p.add_argument("--rtp-timeout", type=float, default=30.0)
    p.add_argument("--first-id", type=int, default=1)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    # The PBX owns our lifetime: a terminal's Ctrl-C or systemd's SIGTERM reaches the whole
    # process group, but we must outlive the PBX's orderly hang-ups; EOF on the control socket
    # (the PBX closing it, or dying) is what stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ctrl = socket.socket(fileno=args.ctrl_fd)
    events = socket.socket(fileno=args.event_fd)
    server = MediaServer(ctrl, events, args.bind_ip, args.port_min, args.port_max, args.rtp_timeout,
                         args.first_id)
    # Imports and tables are done: keep them out of every future collection, and collect young
    # objects less often (each tick and datagram allocates short-lived bytes and tuples, which
    # reference counting frees; the cyclic collector only finds nothing in them).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    profile_path = os.environ.get("PLATEAU_MEDIA_PROFILE")
    if not profile_path:
        uvloop.run(server.run())
        return
    # benchmark aid: cProfile the whole process, stats written on a clean exit
    import cProfile

    prof = cProfile.Profile()
    prof.enable()
    try:
        uvloop.run(server.run())
    finally:
        prof.disable()
        prof.dump_stats(profile_path)


if __name__ == "__main__":
    main()
