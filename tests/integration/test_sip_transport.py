"""SIP transports end to end: a real sippy UAS on PlateauTransactionManager in a subprocess,
driven by raw UDP/TCP sockets.  (SIPp runs against the same UAS in test_sip_transport_sipp.py.)

The UAS (``python tests/integration/test_sip_transport.py --serve``) answers OPTIONS 200,
REGISTER through ``Registrar`` (digest, extension 1001/pw1001 and 1002/pw1002) and, on a
MESSAGE to an extension, sends an OPTIONS request to each registered contact of it.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REALM = "pbx.test"
SECRETS = {"1001": "pw1001", "1002": "pw1002"}


# --------------------------------------------------------------------------- the UAS


def serve(argv: list[str]) -> None:
    """Run the test UAS until SIGTERM; print its ports as one JSON line."""
    sys.path.insert(0, str(REPO))
    import argparse
    import logging

    from sippy.Core.EventDispatcher import ED2
    from sippy.SipRequest import SipRequest
    from sippy.SipURL import SipURL

    from appliance.sip.digest import DigestAuthenticator
    from appliance.sip.guard import ScannerGuard
    from appliance.sip.registrar import Registrar
    from appliance.sip.transactions import PlateauTransactionManager

    ap = argparse.ArgumentParser()
    ap.add_argument("--idle", type=float, default=30.0)
    ap.add_argument("--max-failures", type=int, default=5)
    ap.add_argument("--algorithms", default="SHA-256,MD5")
    ap.add_argument("--max-message", type=int, default=65535)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)

    class NullSipLogger:
        def write(self, *args: object, **kwargs: object) -> None:
            pass

    guard = ScannerGuard(max_failures=args.max_failures, window=60, block_seconds=60)
    auth = DigestAuthenticator(REALM, b"test-key-0123456789abcdef",
                               algorithms=tuple(args.algorithms.split(",")))
    registrar = Registrar(auth, SECRETS.get, guard, persist=lambda b: None,
                          forget=lambda aor, uri: None, min_expires=10)
    tm: PlateauTransactionManager | None = None

    def req_cb(req, t):
        method = req.getMethod()
        if method == "REGISTER":
            return (registrar.handle_register(req), None, None)
        if method == "OPTIONS":
            return (req.genResponse(200, "OK"), None, None)
        if method == "MESSAGE":
            for b in registrar.contacts(req.getRURI().username):
                ping = SipRequest(method="OPTIONS", ruri=SipURL(b.contact_uri), target=b.target)
                tm.newTransaction(ping, resp_cb=lambda resp: None)
            return (req.genResponse(202, "Accepted"), None, None)
        return (req.genResponse(501, "Not Implemented"), None, None)

    gc = {"_sip_address": "127.0.0.1", "_sip_port": 0, "_sip_logger": NullSipLogger()}
    tm = PlateauTransactionManager(gc, req_cb, tcp_laddress=("127.0.0.1", 0), guard=guard,
                                   max_message_size=args.max_message,
                                   tcp_opts={"idle_timeout": args.idle})
    tm.tcp_server.uopts.on_close = lambda peer: registrar.drop_source(peer, "tcp")
    udp = next(iter(tm.l4r.cache_l2s.values()))

    def stop() -> None:
        tm.shutdown()
        ED2.breakLoop()

    ED2.regSignal(signal.SIGTERM, stop)
    print(json.dumps({"udp": udp.uopts.laddress[1], "tcp": tm.tcp_server.uopts.laddress[1]}),
          flush=True)
    ED2.loop()


class Uas:
    def __init__(self, tmp: Path, *args: str) -> None:
        self.err_path = tmp / "uas.stderr"
        self._err = open(self.err_path, "w")  # noqa: SIM115 - lives as long as the process
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", *args],
                                     stdout=subprocess.PIPE, stderr=self._err, text=True,
                                     cwd=str(REPO), env=env)
        ready, _, _ = select.select([self.proc.stdout], [], [], 15)
        if not ready:
            self.stop()
            raise RuntimeError("UAS did not start")
        line = self.proc.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError("UAS died: " + self.err_path.read_text()[-2000:])
        ports = json.loads(line)
        self.udp, self.tcp = ports["udp"], ports["tcp"]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc.stdout.close()
        self._err.close()


@pytest.fixture
def uas(tmp_path: Path):
    u = Uas(tmp_path)
    try:
        yield u
    finally:
        u.stop()


# --------------------------------------------------------------------------- raw clients

_n = 0


def request(method: str, port: int, transport: str = "UDP", local: tuple[str, int] = ("127.0.0.1", 9),
            user: str = "1001", cseq: int = 1, call_id: str | None = None, headers: str = "",
            body: bytes = b"", rport: bool = True, content_length: bool = True) -> bytes:
    global _n
    _n += 1
    call_id = call_id or f"cid-{_n}-{time.monotonic_ns()}"
    via = f"SIP/2.0/{transport} {local[0]}:{local[1]};branch=z9hG4bK{_n}x{time.monotonic_ns()}"
    if rport:
        via += ";rport"
    text = (f"{method} sip:{user}@{REALM} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n"
            f"From: <sip:{user}@{REALM}>;tag=t{_n}\r\nTo: <sip:{user}@{REALM}>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n{headers}")
    if content_length:
        text += f"Content-Length: {len(body)}\r\n"
    return text.encode() + b"\r\n" + body


def udp_client(bind: str = "127.0.0.1") -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((bind, 0))
    s.settimeout(3)
    return s


def udp_exchange(s: socket.socket, data: bytes, port: int, timeout: float = 3) -> bytes | None:
    s.sendto(data, ("127.0.0.1", port))
    s.settimeout(timeout)
    try:
        return s.recvfrom(70000)[0]
    except TimeoutError:
        return None


def status(resp: bytes | None) -> int | None:
    if not resp:
        return None
    m = re.match(rb"SIP/2\.0 (\d{3}) ", resp)
    return int(m.group(1)) if m else None


class TcpReader:
    """A TCP connection with a SIP-aware reader for the test side."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=3)
        self.buf = b""

    @property
    def local(self) -> tuple[str, int]:
        return self.sock.getsockname()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_message(self, timeout: float = 3) -> bytes | None:
        """Next SIP message (or b"\\r\\n" pong); None on timeout, b"" on EOF."""
        deadline = time.monotonic() + timeout
        while True:
            if self.buf.startswith(b"\r\n") and not self.buf.startswith(b"\r\n\r\n"):
                self.buf = self.buf[2:]
                return b"\r\n"
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                m = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", self.buf[:end])
                total = end + 4 + (int(m.group(1)) if m else 0)
                if len(self.buf) >= total:
                    msg, self.buf = self.buf[:total], self.buf[total:]
                    return msg
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return None
            except ConnectionResetError:
                return b""
            if not chunk:
                return b""
            self.buf += chunk

    def close(self) -> None:
        self.sock.close()


def digest_register(port: int, send, read, user="1001", password=None, transport="UDP",
                    local=("127.0.0.1", 9), contact=None, cseq=1) -> bytes | None:
    """Full REGISTER -> 401 -> REGISTER+auth exchange; returns the final response."""
    from appliance.sip.digest import compute_response, parse_digest
    password = SECRETS.get(user, "x") if password is None else password
    contact = contact or f"<sip:{user}@{local[0]}:{local[1]};transport={transport.lower()}>"
    call_id = f"reg-{time.monotonic_ns()}"
    hdr = f"Contact: {contact}\r\nExpires: 60\r\n"
    send(request("REGISTER", port, transport, local, user, cseq, call_id, hdr))
    r401 = read()
    assert status(r401) == 401, r401
    ch = re.findall(rb"(?im)^WWW-Authenticate:\s*(.*?)\r$", r401)
    p = parse_digest(ch[0].decode())
    assert p["algorithm"] == "SHA-256"
    uri = f"sip:{user}@{REALM}"
    resp = compute_response("SHA-256", user, REALM, password, "REGISTER", uri, p["nonce"],
                            "00000001", "abc123", "auth")
    auth = (f'Authorization: Digest username="{user}", realm="{REALM}", nonce="{p["nonce"]}", '
            f'uri="{uri}", response="{resp}", algorithm=SHA-256, qop=auth, nc=00000001, '
            f'cnonce="abc123", opaque="{p["opaque"]}"\r\n')
    send(request("REGISTER", port, transport, local, user, cseq + 1, call_id, hdr + auth))
    return read()


# --------------------------------------------------------------------------- UDP


def test_udp_options_and_register(uas):
    s = udp_client()
    try:
        assert status(udp_exchange(s, request("OPTIONS", uas.udp), uas.udp)) == 200
        final = digest_register(uas.udp, lambda d: s.sendto(d, ("127.0.0.1", uas.udp)),
                                lambda: s.recvfrom(70000)[0], local=s.getsockname())
        assert status(final) == 200
        assert re.search(rb"(?m)^Contact: <sip:1001@127\.0\.0\.1:\d+;transport=udp>;expires=60",
                         final)
    finally:
        s.close()


def test_udp_non_utf8_gets_400_with_matching_via(uas):
    s = udp_client()
    try:
        data = request("OPTIONS", uas.udp, headers="User-Agent: caf\xe9\r\n")
        data = data.replace("café".encode(), b"caf\xe9\xff")
        resp = udp_exchange(s, data, uas.udp)
        assert status(resp) == 400 and b"Invalid UTF-8" in resp.split(b"\r\n")[0]
        branch = re.search(rb"branch=(\S+?);", data).group(1)
        assert branch in resp
        assert re.search(rb"(?m)^Via: .*;rport=%d" % s.getsockname()[1], resp)
        # Unanswerable garbage is dropped and the server keeps serving.
        assert udp_exchange(s, b"\xff\xfe" * 40, uas.udp, timeout=0.5) is None
        assert udp_exchange(s, b"A" * 40, uas.udp, timeout=0.5) is None
        assert status(udp_exchange(s, request("OPTIONS", uas.udp), uas.udp)) == 200
    finally:
        s.close()


def test_udp_large_accepted_oversize_gets_513(tmp_path):
    u = Uas(tmp_path, "--max-message", "16000")
    s = udp_client()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        # 12 kB: more than sippy's stock 8 KiB receive buffer, under our limit -> served.
        ok = request("MESSAGE", u.udp, user="1002", body=b"x" * 12000,
                     headers="Content-Type: text/plain\r\n")
        assert status(udp_exchange(s, ok, u.udp)) == 202
        big = request("MESSAGE", u.udp, body=b"x" * 20000, headers="Content-Type: text/plain\r\n")
        resp = udp_exchange(s, big, u.udp)
        assert status(resp) == 513 and b"Message Too Large" in resp
    finally:
        s.close()
        u.stop()


def test_udp_scanner_blocked_after_failures(uas):
    scanner, phone = udp_client("127.0.0.2"), udp_client()
    try:
        for i in range(5):
            data = request("REGISTER", uas.udp, cseq=i + 1, user="1001",
                           headers='Contact: <sip:1001@127.0.0.2:9>\r\nAuthorization: Digest '
                                   f'username="1001", realm="{REALM}", nonce="x", uri="sip:1001@{REALM}", '
                                   'response="00", qop=auth, nc=00000001, cnonce="c"\r\n')
            assert status(udp_exchange(scanner, data, uas.udp)) == 401
        assert udp_exchange(scanner, request("OPTIONS", uas.udp), uas.udp, timeout=0.7) is None
        assert status(udp_exchange(phone, request("OPTIONS", uas.udp), uas.udp)) == 200
        # TCP connections from the blocked address are refused at accept.
        c = socket.socket()
        c.bind(("127.0.0.2", 0))
        c.settimeout(2)
        c.connect(("127.0.0.1", uas.tcp))
        c.sendall(request("OPTIONS", uas.tcp, "TCP"))
        try:
            got = c.recv(100)
        except (TimeoutError, ConnectionResetError):
            got = b""
        c.close()
        assert got == b""
    finally:
        scanner.close()
        phone.close()


def _numbered_sink() -> socket.socket:
    """A UDP socket on loopback with room for a burst of numbered datagrams."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sink.settimeout(2)
    return sink


def _received_numbers(sink: socket.socket, n: int) -> list[int]:
    """The sequence numbers (first 6 bytes) of up to ``n`` datagrams, until 2 s of silence."""
    got: list[int] = []
    try:
        while len(got) < n:
            got.append(int(sink.recv(1000)[:6]))
    except TimeoutError:
        pass
    return got


def test_ordered_udp_server_keeps_send_order():
    """2,000 datagrams queued back to back leave in order (one sender thread)."""
    from appliance.sip.udp_transport import OrderedUdpServer, OrderedUdpServerOpts
    sink = _numbered_sink()
    srv = OrderedUdpServer({}, OrderedUdpServerOpts(("127.0.0.1", 0), lambda *a: None))
    try:
        assert len(srv.asenders) == 1 and len(srv.areceivers) == 1
        n = 2000
        for i in range(n):
            srv.send_to(b"%06d" % i + b"." * 300, sink.getsockname())
        got = _received_numbers(sink, n)
        assert len(got) > n * 0.95  # loopback may drop under a full buffer, never reorder
        assert got == sorted(got)
    finally:
        srv.shutdown()
        sink.close()
    assert srv.asenders is None


def test_ordered_udp_server_keeps_order_between_direct_and_queued_sends():
    """The loop sends itself while the sender thread is idle; a datagram that must be queued
    (a host name to resolve) makes the ones after it queue too, so order still holds."""
    from appliance.sip.udp_transport import OrderedUdpServer, OrderedUdpServerOpts
    from tests.peers.polling import wait_until  # here: this file also runs as the UAS script
    sink = _numbered_sink()
    port = sink.getsockname()[1]
    srv = OrderedUdpServer({}, OrderedUdpServerOpts(("127.0.0.1", 0), lambda *a: None))
    direct = {"n": 0}
    send_now = srv._send_now

    def counted(data: bytes, address: tuple) -> bool:
        sent = send_now(data, address)
        direct["n"] += sent
        return sent

    srv._send_now = counted  # type: ignore[method-assign]
    try:
        n = 1000
        for i in range(n):
            if i % 50 == 0:
                wait_until(lambda: srv.sender_idle, timeout=5.0, what="the sender thread idle")
            host = "localhost" if i % 50 == 25 else "127.0.0.1"
            srv.send_to(b"%06d" % i + b"." * 300, (host, port))
        got = _received_numbers(sink, n)
        assert len(got) > n * 0.95  # loopback may drop under a full buffer, never reorder
        assert got == sorted(got)
        assert n // 50 <= direct["n"] < n - n // 50  # both paths were taken
    finally:
        srv.shutdown()
        sink.close()


# --------------------------------------------------------------------------- TCP


def test_tcp_several_messages_one_connection_split_and_coalesced(uas):
    c = TcpReader(uas.tcp)
    try:
        m = [request("OPTIONS", uas.tcp, "TCP", c.local, cseq=i + 1) for i in range(4)]
        c.send(m[0])
        assert status(c.read_message()) == 200
        # split across three segments, including inside the header terminator
        cut = m[1].index(b"\r\n\r\n") + 2
        for part in (m[1][:20], m[1][20:cut], m[1][cut:]):
            c.send(part)
            time.sleep(0.05)
        r1 = c.read_message()
        assert status(r1) == 200 and b"CSeq: 2 OPTIONS" in r1
        c.send(m[2] + m[3])  # two messages in one segment
        r2, r3 = c.read_message(), c.read_message()
        assert b"CSeq: 3 OPTIONS" in r2 and b"CSeq: 4 OPTIONS" in r3
        assert re.search(rb"(?m)^Via: SIP/2\.0/TCP ", r3)
    finally:
        c.close()


def test_tcp_keepalive_pong_and_junk(uas):
    c = TcpReader(uas.tcp)
    try:
        c.send(b"\r\n\r\n")
        assert c.read_message() == b"\r\n"  # RFC 5626 §4.4.1
        bad = request("OPTIONS", uas.tcp, "TCP", c.local, body=b"\xff\xfe\xfd",
                      headers="Content-Type: text/plain\r\n")
        resp = c.read_message() if c.send(bad) is None else None
        assert status(resp) == 400
        c.send(request("OPTIONS", uas.tcp, "TCP", c.local))  # framing intact: still served
        assert status(c.read_message()) == 200
    finally:
        c.close()


def test_tcp_missing_content_length_400_then_close(uas):
    c = TcpReader(uas.tcp)
    try:
        c.send(request("OPTIONS", uas.tcp, "TCP", c.local, content_length=False))
        resp = c.read_message()
        assert status(resp) == 400 and b"Missing Content-Length" in resp
        assert c.read_message() == b""  # closed: framing is lost
    finally:
        c.close()


def test_tcp_oversize_513_then_close(uas):
    c = TcpReader(uas.tcp)
    try:
        big = request("MESSAGE", uas.tcp, "TCP", c.local, body=b"y" * 70000)
        c.send(big[:2000])
        resp = c.read_message()
        assert status(resp) == 513
        assert c.read_message() == b""
    finally:
        c.close()


def test_tcp_response_follows_connection_not_via(uas):
    """RFC 3261 §18.2.2: reply on the request's connection even if Via names another port."""
    c = TcpReader(uas.tcp)
    try:
        c.send(request("OPTIONS", uas.tcp, "TCP", ("127.0.0.1", 9), rport=False))
        assert status(c.read_message()) == 200
    finally:
        c.close()


def test_tcp_register_then_server_request_reuses_connection_without_retransmit(uas):
    c = TcpReader(uas.tcp)
    try:
        final = digest_register(uas.tcp, c.send, c.read_message, transport="TCP",
                                local=("192.168.77.7", 5099))  # a private, unreachable contact
        assert status(final) == 200
        c.send(request("MESSAGE", uas.tcp, "TCP", c.local))
        got = [c.read_message(), c.read_message()]
        assert status(got[0]) == 202 or status(got[1]) == 202
        # The OPTIONS arrives on the registering connection, not at the (private) Contact.
        ping = next(m for m in got if m and m.startswith(b"OPTIONS "))
        assert ping.startswith(b"OPTIONS sip:1001@192.168.77.7:5099;transport=tcp SIP/2.0")
        assert re.search(rb"(?m)^Via: SIP/2\.0/TCP 127\.0\.0\.1:%d;" % uas.tcp, ping)
        # No timer A over TCP: UDP would have retransmitted at 0.5 s and 1.5 s.
        assert c.read_message(timeout=1.8) is None
    finally:
        c.close()


def test_tcp_idle_connection_closed(tmp_path):
    u = Uas(tmp_path, "--idle", "1")
    try:
        c = TcpReader(u.tcp)
        c.send(request("OPTIONS", u.tcp, "TCP", c.local))
        assert status(c.read_message()) == 200
        t0 = time.monotonic()
        assert c.read_message(timeout=5) == b""
        assert time.monotonic() - t0 < 4
        c.close()
    finally:
        u.stop()


if __name__ == "__main__" and "--serve" in sys.argv:
    serve(sys.argv[sys.argv.index("--serve") + 1:])


def test_ordered_udp_server_hands_a_burst_to_the_loop_in_order_and_in_few_hand_overs(monkeypatch):
    """The receiver reads every datagram waiting and hands them to the loop in one call, in
    arrival order: a burst of 1,000 costs the loop a few dozen wake-ups, not 1,000."""
    import threading

    from appliance.sip import udp_transport
    from tests.peers.polling import wait_until  # here: this file also runs as the UAS script

    burst_sent = threading.Event()
    hand_overs: list[int] = []

    class Loop:
        """The SIP loop's call-from-thread port: runs the call on the receiver thread; the first
        waits for the whole burst, so the datagrams queue up on the socket meanwhile."""

        @staticmethod
        def callFromThread(fn, *args):  # noqa: N802 (sippy's name)
            if not hand_overs:
                burst_sent.wait(10)
            hand_overs.append(len(args[0]))
            fn(*args)

    monkeypatch.setattr(udp_transport, "ED2", Loop)
    got: list[int] = []
    srv = udp_transport.OrderedUdpServer({}, udp_transport.OrderedUdpServerOpts(
        ("127.0.0.1", 0), lambda data, address, server, rtime: got.append(int(data[:6]))))
    phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        n = 1000
        for i in range(n):
            phone.sendto(b"%06d" % i + b"." * 300, srv.uopts.laddress)
        burst_sent.set()
        wait_until(lambda: len(got) >= n * 0.95 and sum(hand_overs) == len(got), timeout=10.0,
                   what="the burst handed to the loop")
        assert got == sorted(got)  # loopback may drop under a full buffer, never reorder
        assert max(hand_overs) == udp_transport._MAX_BATCH
        assert len(hand_overs) <= n // udp_transport._MAX_BATCH + 5
    finally:
        burst_sent.set()
        srv.shutdown()
        phone.close()
