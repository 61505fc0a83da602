"""Every supervised thread, killed: its death is counted with its cause, it restarts on the same
socket, and the transport (or API, or media events) works again.

Where a real input kills the thread today, the test sends it (a send item whose address has no
port). Where the parser bugs that killed the others are being fixed, a fault is injected at the
parser's place (a framer or a handler raising, as sippy's Via parser did), which is what such a
bug looks like to the thread's loop.
"""
from __future__ import annotations

import socket
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.api.server import ControlApiServer
from appliance.media.client import MediaClient
from appliance.media.events import MediaEvent, PlaybackFinished
from appliance.sip import tcp_transport, udp_transport
from appliance.sip.tcp_transport import Tcp_server, Tcp_server_opts
from appliance.sip.udp_transport import OrderedUdpServer, OrderedUdpServerOpts
from tests.audio import write_tone_wav
from tests.peers.engine import free_port_range
from tests.peers.polling import wait_until


def part(parts: list[Any], name: str) -> Any:
    return next(p for p in parts if p.name == name)


@pytest.fixture
def udp() -> Iterator[OrderedUdpServer]:
    srv = OrderedUdpServer({}, OrderedUdpServerOpts(("127.0.0.1", 0), lambda *a: None))
    yield srv
    srv.shutdown()
    srv.join()


def test_udp_sender_killed_by_a_bad_destination_restarts_and_sends_again(udp: OrderedUdpServer) -> None:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.settimeout(2.0)
    try:
        udp.send_to(b"first", sink.getsockname())
        assert sink.recv(100) == b"first"
        udp.sendqueue.put((b"never", ("127.0.0.1",)))  # no port: IndexError in the sender's loop
        udp.send_to(b"after", sink.getsockname())
        assert sink.recv(100) == b"after"
        sender = part(udp.health(), "sip-udp-send")
        assert sender.alive and sender.deaths == 1 and sender.restarts == 1
        assert sender.last_error is not None and sender.last_error.startswith("IndexError")
    finally:
        sink.close()


def test_udp_receiver_killed_restarts_on_the_same_socket(udp: OrderedUdpServer,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    got: list[bytes] = []
    calls = {"n": 0}
    real = udp_transport.MonoTime

    def stamp() -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("not enough values to unpack (expected 2, got 1)")  # a parser's death
        return real()

    monkeypatch.setattr(udp_transport, "MonoTime", stamp)
    # The receiver hands the loop every datagram waiting as one batch of (data, address).
    monkeypatch.setattr(udp_transport.ED2, "callFromThread",
                        lambda fn, batch, *a: got.extend(data for data, _address in batch))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as phone:
        phone.sendto(b"killer", udp.skt.getsockname())
        wait_until(lambda: part(udp.health(), "sip-udp-recv").deaths == 1, what="the receiver's death counted")
        phone.sendto(b"OPTIONS", udp.skt.getsockname())
        wait_until(lambda: got == [b"OPTIONS"], what="the next datagram handed on")
    recv = part(udp.health(), "sip-udp-recv")
    assert recv.alive and recv.restarts == 1 and "not enough values" in (recv.last_error or "")


def test_idle_udp_threads_still_beat(udp: OrderedUdpServer) -> None:
    before = {p.name: p.last_progress for p in udp.health()}
    wait_until(lambda: all(p.last_progress > before[p.name] for p in udp.health()), timeout=3.0,
               what="both idle threads beat")


def test_tcp_thread_killed_by_a_message_closes_that_connection_and_serves_the_next(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real_feed = tcp_transport.StreamFramer.feed

    def feed(self: Any, chunk: bytes) -> Any:
        if b"KILLER" in chunk:  # what sippy's Via parser did inside build_error_response
            raise ValueError("not enough values to unpack (expected 2, got 1)")
        return real_feed(self, chunk)

    monkeypatch.setattr(tcp_transport.StreamFramer, "feed", feed)
    srv = Tcp_server({}, Tcp_server_opts(("127.0.0.1", 0), lambda *a: None))
    try:
        addr = srv.uopts.laddress
        with socket.create_connection(addr, timeout=2.0) as bad:
            bad.sendall(b"OPTIONS sip:x SIP/2.0\r\nVia: KILLER\r\n\r\n")
            assert bad.recv(100) == b""  # the connection that killed the loop is closed
        with socket.create_connection(addr, timeout=2.0) as good:
            good.sendall(b"\r\n\r\n")  # RFC 5626 §4.4.1 ping, answered by the I/O thread
            assert good.recv(100) == b"\r\n"
        tcp = part(srv.health(), "sip-tcp")
        assert tcp.alive and tcp.deaths == 1 and tcp.restarts == 1
    finally:
        srv.shutdown()


class _Facade:
    def status(self) -> dict[str, Any]:
        return {"ok": True}


def test_control_api_accept_loop_killed_restarts() -> None:
    api = ControlApiServer("127.0.0.1", 0, "token", _Facade(), lambda fn, *a: fn(*a))  # type: ignore[arg-type]
    api.start()
    try:
        httpd = api._httpd
        assert httpd is not None
        real = httpd._handle_request_noblock  # type: ignore[attr-defined]
        calls = {"n": 0}

        def handle() -> None:
            calls["n"] += 1
            if calls["n"] == 1:
                raise MemoryError("injected")  # an accept-loop death socketserver does not catch
            real()

        httpd._handle_request_noblock = handle  # type: ignore[attr-defined]
        req = urllib.request.Request(api.url + "/v1/status", headers={"Authorization": "Bearer token"})
        # the loop dies before it accepts; restarted, it accepts the same connection from the backlog
        with urllib.request.urlopen(req, timeout=5.0) as resp:
            assert resp.status == 200
        loop = part(api.health(), "control-api")
        assert loop.alive and loop.restarts == 1 and loop.last_error == "MemoryError: injected"
    finally:
        api.stop()


def test_media_events_reader_killed_by_its_handler_restarts(tmp_path: Path) -> None:
    lo, hi = free_port_range(20)
    client = MediaClient.start("127.0.0.1", lo, hi, rtp_timeout_s=5.0)
    try:
        seen: list[MediaEvent] = []
        done = threading.Event()

        def handler(ev: MediaEvent) -> None:
            seen.append(ev)
            if len(seen) == 1:
                raise KeyError("a handler bug")
            done.set()

        client.set_event_handler(handler)
        client.create_leg("a")
        client.configure_leg("a", ("127.0.0.1", 9), "PCMU", 0, None)
        short = write_tone_wav(tmp_path / "short.wav", 440, 0.1)
        client.play("a", str(short), loop=False)
        wait_until(lambda: seen, what="the first PlaybackFinished")
        client.play("a", str(short), loop=False)
        assert done.wait(5.0), "the reader did not deliver the next event"
        assert all(isinstance(ev, PlaybackFinished) for ev in seen)
        reader = part(client.health(), "media-events")
        assert reader.alive and reader.deaths == 1 and reader.restarts == 1
    finally:
        client.close()


def test_media_process_killed_in_process_keeps_its_legs_on_the_same_ports() -> None:
    lo, hi = free_port_range(20)
    client = MediaClient.start("127.0.0.1", lo, hi, rtp_timeout_s=5.0)
    try:
        port_a = client.create_leg("a")
        port_b = client.create_leg("b")
        client.configure_leg("a", ("127.0.0.1", 9), "PCMU", 0, 101)
        client.configure_leg("b", ("127.0.0.1", 11), "PCMA", 8, None)
        client.bridge("br", ["a", "b"])
        old = client.pid
        client._proc.kill()
        wait_until(lambda: client.pid != old and client.health()[0].alive, what="a new media process")
        assert client.last_restart is not None and client.last_restart.lost_legs == []
        # the ports are bound again by the new process: binding them here fails
        for port in (port_a, port_b):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s, pytest.raises(OSError):
                s.bind(("127.0.0.1", port))
        stats = client.engine_stats()
        assert stats["legs"] == 2, stats
        assert client.ledger.bridges == {"br": ["a", "b"]}
        client.destroy_leg("a")  # the restarted process knows the leg
        wait_until(lambda: client.engine_stats()["legs"] == 1, what="leg a destroyed in the new process")
    finally:
        client.close()


def test_engine_udp_sender_killed_by_an_options_restarts_and_the_engine_answers_again(tmp_path: Path) -> None:
    """Finding 1's packet: an OPTIONS whose top Via has port 99999 and no rport. Today it kills
    sip-udp-send (OverflowError in sendto) and UDP goes silent. Supervised, the death is logged
    and counted in /v1/status, the thread restarts, and OPTIONS are answered again. (Once the
    transport range-checks the Via port, the packet no longer kills it: then no death, and
    the answer still comes.)"""
    from appliance.system.health import sip_options
    from tests.peers.engine import Engine

    eng = Engine(tmp_path / "engine")
    with eng.running():
        assert (r := sip_options("127.0.0.1", eng.sip_port)) is not None and r.ok
        killer = ("OPTIONS sip:127.0.0.1 SIP/2.0\r\n"
                  "Via: SIP/2.0/UDP 127.0.0.1:99999;branch=z9hG4bKkill1\r\n"
                  "Max-Forwards: 70\r\nFrom: <sip:x@127.0.0.1>;tag=k1\r\nTo: <sip:127.0.0.1>\r\n"
                  "Call-ID: killer-1@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(killer.encode(), ("127.0.0.1", eng.sip_port))

        def sender() -> dict[str, Any]:
            parts = eng.api("GET", "/v1/status")[1]["supervision"]["parts"]
            return dict(next(p for p in parts if p["name"] == "sip-udp-send"))

        wait_until(lambda: (r := sip_options("127.0.0.1", eng.sip_port, timeout=0.5)) is not None and r.ok,
                   timeout=5.0, what="OPTIONS answered after the killer packet")
        st = sender()
        assert st["alive"] and st["deaths"] == st["restarts"] and st["deaths"] in (0, 1), st
        if st["deaths"]:
            assert st["last_error"].startswith("OverflowError")
            log = eng.stderr_path.read_text()
            assert log.count("thread sip-udp-send died") == 1 and "Traceback" in log
