"""Message-waiting indication end to end: a bare sippy stack (PlateauTransactionManager, Registrar,
SipRouter with an MwiNotifier over real Mailboxes) in a subprocess, and phones as raw UDP sockets.

The server (``python tests/integration/test_sip_mwi.py --serve DIR``) reads commands on stdin
standing in for the PBX after a deposit or a retrieval: ``add <mailbox> <seconds>`` records a
message WAV into the mailbox, ``heard <mailbox>`` marks its messages heard; both then call
``MwiNotifier.notify(mailbox, *counts)`` and print the counts as a JSON line.
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
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REALM = "pbx.test"
SECRETS = {"1001": "pw1001", "1002": "pw1002"}


# --------------------------------------------------------------------------- the server


def serve(argv: list[str]) -> None:
    """Run the MWI server until SIGTERM; print its UDP port as one JSON line."""
    sys.path.insert(0, str(REPO))
    import logging
    import threading

    from sippy.Core.EventDispatcher import ED2

    from appliance.sip.context import SipContext
    from appliance.sip.digest import DigestAuthenticator
    from appliance.sip.guard import ScannerGuard
    from appliance.sip.mwi import MwiNotifier
    from appliance.sip.registrar import Registrar
    from appliance.sip.router import SipRouter
    from appliance.sip.transactions import PlateauTransactionManager
    from appliance.store.db import Store
    from appliance.voicemail.mailbox import Mailboxes
    from tests.audio import write_tone_wav

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    data = Path(argv[0])

    class NullSipLogger:
        def write(self, *args: object, **kwargs: object) -> None:
            pass

    store = Store(data / "vm.db")
    boxes = Mailboxes(store, data / "voicemail")
    guard = ScannerGuard(max_failures=20, window=60, block_seconds=60)
    auth = DigestAuthenticator(REALM, b"test-key-0123456789abcdef", algorithms=("SHA-256", "MD5"))
    registrar = Registrar(auth, SECRETS.get, guard, persist=lambda b: None, forget=lambda aor, uri: None,
                          min_expires=10)
    gc: dict[str, object] = {"_sip_address": "127.0.0.1", "_sip_port": 0, "_sip_logger": NullSipLogger()}
    ctx = SipContext(gc, None, "127.0.0.1")
    router = SipRouter(ctx, None, registrar, auth, guard, SECRETS.get)  # type: ignore[arg-type]
    router.mwi = MwiNotifier(gc, registrar, boxes.counts, domain=REALM)
    tm = PlateauTransactionManager(gc, router, guard=guard)
    gc["_sip_tm"] = tm
    udp = next(iter(tm.l4r.cache_l2s.values()))
    gc["_sip_port"] = udp.uopts.laddress[1]

    def command(line: str) -> None:
        verb, mailbox, *rest = line.split()
        if verb == "add":
            boxes.add(mailbox, "1002", "Bob", write_tone_wav(boxes.new_path(mailbox), 440, float(rest[0])))
        elif verb == "heard":
            for msg in boxes.messages(mailbox):
                boxes.mark_heard(msg.id)
        new, old = boxes.counts(mailbox)
        router.mwi.notify(mailbox, new, old)
        print(json.dumps({"counts": [new, old]}), flush=True)

    def read_stdin() -> None:
        for line in sys.stdin:
            if line.strip():
                ED2.callFromThread(command, line)

    threading.Thread(target=read_stdin, daemon=True).start()

    def stop() -> None:
        tm.shutdown()
        store.close()
        ED2.breakLoop()

    ED2.regSignal(signal.SIGTERM, stop)
    print(json.dumps({"udp": gc["_sip_port"]}), flush=True)
    ED2.loop()


class Server:
    def __init__(self, tmp: Path) -> None:
        self.err_path = tmp / "mwi.stderr"
        self._err = open(self.err_path, "w")  # noqa: SIM115 - lives as long as the process
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", str(tmp)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._err, text=True, cwd=str(REPO), env=env)
        self.port = int(self._line(15)["udp"])

    def _line(self, timeout: float) -> dict[str, object]:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.stop()
            raise RuntimeError("MWI server silent or dead: " + self.err_path.read_text()[-2000:])
        return json.loads(line)

    def command(self, line: str) -> list[int]:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return list(self._line(5)["counts"])  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for pipe in (self.proc.stdin, self.proc.stdout):
            pipe.close()
        self._err.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path)
    try:
        yield s
    finally:
        s.stop()


# --------------------------------------------------------------------------- a raw UDP phone


def header(msg: bytes, name: str) -> str | None:
    m = re.search(rb"(?im)^" + re.escape(name.encode()) + rb"\s*:\s*(.*?)\r$", msg)
    return m.group(1).decode() if m else None


def status(msg: bytes) -> int | None:
    m = re.match(rb"SIP/2\.0 (\d{3}) ", msg)
    return int(m.group(1)) if m else None


def body(msg: bytes) -> str:
    return msg.split(b"\r\n\r\n", 1)[1].decode()


class Phone:
    """Just enough of a UA: REGISTER/SUBSCRIBE with digest, and 200 to every request it gets."""

    def __init__(self, user: str, server_port: int) -> None:
        self.user = user
        self.server = ("127.0.0.1", server_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.local = self.sock.getsockname()
        self.backlog: list[bytes] = []
        self.n = 0

    def close(self) -> None:
        self.sock.close()

    def send(self, method: str, ruri_user: str, call_id: str, cseq: int, headers: str = "",
             to_tag: str | None = None) -> None:
        self.n += 1
        to = f"<sip:{ruri_user}@{REALM}>" + (f";tag={to_tag}" if to_tag else "")
        text = (f"{method} sip:{ruri_user}@{REALM} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {self.local[0]}:{self.local[1]};branch=z9hG4bK{call_id}-{self.n};rport\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:{self.user}@{REALM}>;tag=ft{self.user}\r\nTo: {to}\r\n"
                f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
                f"Contact: <sip:{self.user}@{self.local[0]}:{self.local[1]}>\r\n{headers}Content-Length: 0\r\n\r\n")
        self.sock.sendto(text.encode(), self.server)

    def receive(self, want: Callable[[bytes], bool], timeout: float = 3.0) -> bytes:
        """The next message matching `want`; requests are answered 200 as they arrive."""
        for i, msg in enumerate(self.backlog):
            if want(msg):
                return self.backlog.pop(i)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                msg = self.sock.recvfrom(65535)[0]
            except TimeoutError:
                break
            if not msg.startswith(b"SIP/2.0"):
                self._ok(msg)
            if want(msg):
                return msg
            self.backlog.append(msg)
        raise AssertionError(f"{self.user}: nothing expected within {timeout} s; got {self.backlog!r}")

    def no_message(self, seconds: float) -> bool:
        self.sock.settimeout(seconds)
        try:
            self.backlog.append(self.sock.recvfrom(65535)[0])
        except TimeoutError:
            return True
        return False

    def _ok(self, req: bytes) -> None:
        head = req.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
        keep = [h for h in head[1:] if h.split(":", 1)[0].strip().lower() in ("via", "from", "to", "call-id", "cseq")]
        self.sock.sendto(("SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n").encode(),
                         self.server)

    def authed(self, method: str, ruri_user: str, call_id: str, cseq: int, headers: str = "",
               to_tag: str | None = None) -> tuple[bytes, int]:
        """Send, answer the 401/407 challenge; returns the final response and the CSeq used."""
        from appliance.sip.digest import compute_response, parse_digest

        def is_resp(m: bytes) -> bool:
            return status(m) is not None and (header(m, "Call-ID") == call_id) and status(m) != 100

        self.send(method, ruri_user, call_id, cseq, headers, to_tag)
        challenge = self.receive(is_resp)
        code = status(challenge)
        if code not in (401, 407):
            return challenge, cseq
        name = "WWW-Authenticate" if code == 401 else "Proxy-Authenticate"
        p = parse_digest(header(challenge, name) or "")
        assert p is not None
        uri = f"sip:{ruri_user}@{REALM}"
        resp = compute_response(p["algorithm"], self.user, REALM, SECRETS[self.user], method, uri, p["nonce"],
                                "00000001", "c0ffee", "auth")
        auth = (f'{"Authorization" if code == 401 else "Proxy-Authorization"}: Digest username="{self.user}", '
                f'realm="{REALM}", nonce="{p["nonce"]}", uri="{uri}", response="{resp}", '
                f'algorithm={p["algorithm"]}, qop=auth, nc=00000001, cnonce="c0ffee", opaque="{p["opaque"]}"\r\n')
        self.send(method, ruri_user, call_id, cseq + 1, headers + auth, to_tag)
        return self.receive(is_resp), cseq + 1

    def register(self) -> None:
        resp, _ = self.authed("REGISTER", self.user, f"reg-{self.local[1]}", 1, "Expires: 300\r\n")
        assert status(resp) == 200, resp


def notify_for(call_id: str | None = None) -> Callable[[bytes], bool]:
    def want(msg: bytes) -> bool:
        return msg.startswith(b"NOTIFY ") and (call_id is None or header(msg, "Call-ID") == call_id)
    return want


def counts(msg: bytes) -> tuple[str, str]:
    text = body(msg)
    waiting = re.search(r"Messages-Waiting: (yes|no)", text)
    voice = re.search(r"Voice-Message: (\d+/\d+)", text)
    assert waiting and voice, text
    return waiting.group(1), voice.group(1)


@pytest.fixture
def phones(server: Server) -> Iterator[Callable[[str], Phone]]:
    made: list[Phone] = []

    def make(user: str) -> Phone:
        made.append(Phone(user, server.port))
        return made[-1]

    try:
        yield make
    finally:
        for p in made:
            p.close()


# --------------------------------------------------------------------------- tests

SUB_HEADERS = "Event: message-summary\r\nAccept: application/simple-message-summary\r\nExpires: 600\r\n"


def test_subscribe_then_notify_on_every_change(server: Server, phones: Callable[[str], Phone]) -> None:
    phone = phones("1001")
    phone.register()
    resp, cseq = phone.authed("SUBSCRIBE", "1001", "mwi-1", 1, SUB_HEADERS)
    assert status(resp) == 200, resp
    assert header(resp, "Expires") == "600"
    our_tag = re.search(r"tag=([^;>\s]+)", header(resp, "To") or "")
    assert our_tag, resp
    first = phone.receive(notify_for("mwi-1"))
    assert header(first, "Event") == "message-summary"
    assert (header(first, "Subscription-State") or "").startswith("active")
    assert header(first, "Content-Type") == "application/simple-message-summary"
    assert f"tag={our_tag.group(1)}" in (header(first, "From") or "")
    assert counts(first) == ("no", "0/0")
    assert f"Message-Account: sip:1001@{REALM}" in body(first)

    assert server.command("add 1001 1.5") == [1, 0]
    assert counts(phone.receive(notify_for("mwi-1"))) == ("yes", "1/0")
    assert server.command("add 1001 1.2") == [2, 0]
    assert counts(phone.receive(notify_for("mwi-1"))) == ("yes", "2/0")
    assert server.command("heard 1001") == [0, 2]
    assert counts(phone.receive(notify_for("mwi-1"))) == ("no", "0/2")

    # A refresh in the dialog is accepted and answered with the state again.
    resp, _ = phone.authed("SUBSCRIBE", "1001", "mwi-1", cseq + 1, SUB_HEADERS, to_tag=our_tag.group(1))
    assert status(resp) == 200, resp
    assert counts(phone.receive(notify_for("mwi-1"))) == ("no", "0/2")


def test_phones_that_do_not_subscribe_get_unsolicited_notify(server: Server,
                                                             phones: Callable[[str], Phone]) -> None:
    desk, soft = phones("1001"), phones("1001")
    desk.register()
    soft.register()
    resp, _ = desk.authed("SUBSCRIBE", "1001", "mwi-2", 1, SUB_HEADERS)
    assert status(resp) == 200
    desk.receive(notify_for("mwi-2"))
    assert server.command("add 1001 1.5") == [1, 0]
    assert counts(desk.receive(notify_for("mwi-2"))) == ("yes", "1/0")
    unsolicited = soft.receive(notify_for())
    assert counts(unsolicited) == ("yes", "1/0")
    assert header(unsolicited, "Subscription-State") == "active"
    assert re.search(r"tag=", header(unsolicited, "To") or "") is None  # out of any dialog
    assert desk.no_message(0.5)  # the subscribed phone is not told twice
    other = phones("1002")
    other.register()
    assert server.command("add 1001 1.1") == [2, 0]
    assert other.no_message(0.5)  # 1002's phone hears nothing of 1001's mailbox


def test_subscribe_refusals(server: Server, phones: Callable[[str], Phone]) -> None:
    phone = phones("1001")
    phone.send("SUBSCRIBE", "1001", "mwi-3", 1, SUB_HEADERS)  # no credentials
    assert status(phone.receive(lambda m: header(m, "Call-ID") == "mwi-3")) == 407
    resp, _ = phone.authed("SUBSCRIBE", "1001", "mwi-4", 1, "Event: presence\r\nExpires: 600\r\n")
    assert status(resp) == 489 and header(resp, "Allow-Events") == "message-summary"
    resp, _ = phone.authed("SUBSCRIBE", "1002", "mwi-5", 1, SUB_HEADERS)
    assert status(resp) == 403  # someone else's mailbox
    resp, _ = phone.authed("SUBSCRIBE", "1001", "mwi-6", 1, SUB_HEADERS, to_tag="unknown")
    assert status(resp) == 481  # a refresh of a subscription the server does not have
    assert phone.no_message(0.3)  # and no NOTIFY followed any of these


if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[1] == "--serve":
    serve(sys.argv[2:])
