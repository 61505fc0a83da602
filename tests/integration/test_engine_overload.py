"""Overload (issue 12, finding 9): new INVITEs are shed early with 503 + Retry-After, calls up stay up.

A flood of new INVITEs (more than the engine's loop can handle, sent as fast as a socket
allows) must be refused in the UDP receive thread before it reaches the loop, while SIPp calls
already established through the engine (1003 -> 1002, digest, a registered SIPp UAS) run to
their normal end.  bench/sip_load.py measures the goodput; this checks the mechanism.
"""

from __future__ import annotations

import re
import socket
import threading
import time
import uuid
from pathlib import Path

from tests.peers.engine import Engine, default_config
from tests.peers.polling import wait_until
from tests.peers.sipp import SippProcess, SippResult, auth_row, run_sipp

STANDING = 5


def _invite(eng: Engine, n: int, port: int) -> bytes:
    return (f"INVITE sip:1002@{eng.sip_ip}:{eng.sip_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{n}x{uuid.uuid4().hex[:8]};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:1001@{eng.sip_ip}>;tag=f{n}\r\n"
            f"To: <sip:1002@{eng.sip_ip}>\r\n"
            f"Call-ID: flood-{n}-{uuid.uuid4().hex}\r\n"
            "CSeq: 1 INVITE\r\n"
            f"Contact: <sip:1001@127.0.0.1:{port}>\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def test_flood_of_new_invites_is_shed_early_and_calls_up_are_unaffected(tmp_path: Path) -> None:
    eng = Engine(tmp_path / "engine", config=default_config(), extra_args=["--digest-algorithms", "MD5,SHA-256"])
    with eng.running():
        target = f"{eng.sip_ip}:{eng.sip_port}"
        with SippProcess("load_uas", register=("1002", eng.secret("1002"), target), workdir=tmp_path / "uas"):
            box: dict[str, SippResult] = {}

            def standing() -> None:
                box["res"] = run_sipp("load_uac", target, service="1002", calls=STANDING, rate=10,
                                      inject=[auth_row("1003", eng.secret("1003"))],
                                      extra_args=["-d", "8000", "-recv_timeout", "20000"],
                                      timeout=60, workdir=tmp_path / "standing")

            bg = threading.Thread(target=standing)
            bg.start()
            try:
                wait_until(lambda: len(eng.api("GET", "/v1/calls")[1]) >= STANDING, timeout=15,
                           what="the standing calls are up")
                replies = _flood(eng, 6000)
            finally:
                bg.join(timeout=90)
            res = box["res"]
            assert res.successful == STANDING and res.failed == 0, res.explain()
        shed = [r for r in replies if r.startswith(b"SIP/2.0 503 Service Unavailable (overloaded)")]
        assert shed, {r.split(b"\r\n")[0] for r in replies}
        assert all(re.search(rb"\r\nRetry-After: \d+\r\n", r, re.IGNORECASE) for r in shed), shed[:3]
        status, body = eng.api("GET", "/v1/status")
        assert body["sip"]["counters"].get("invites_shed_early", 0) > 0, body["sip"]
        # Once the flood is over, new calls are admitted again.
        wait_until(lambda: eng.api("GET", "/v1/status")[1]["sip"]["overload"]["shedding"] == 0,
                   timeout=10, what="the gate reopens")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.settimeout(3)
        s.sendto(_invite(eng, 0, s.getsockname()[1]), (eng.sip_ip, eng.sip_port))
        first = b""
        while not first or first.startswith(b"SIP/2.0 100"):
            first = s.recv(65535)
        s.close()
        assert first.startswith(b"SIP/2.0 407"), first[:80]


def _flood(eng: Engine, count: int) -> list[bytes]:
    """Send `count` new INVITEs as fast as possible; the replies received meanwhile and just after."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.setblocking(False)
    replies: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                replies.append(s.recv(65535))
            except BlockingIOError:
                return

    for n in range(count):
        s.sendto(_invite(eng, n + 1, port), (eng.sip_ip, eng.sip_port))
        if n % 200 == 0:
            drain()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        drain()
        time.sleep(0.05)
    s.close()
    return replies
