"""Kamailio as the site's front door (issue 14, item 2): real Kamailio, real engines on one
PostgreSQL, real pjsua2 phones, all on loopback.

The phones know one address, Kamailio's (127.0.0.2); the engines (127.0.0.1, free ports) are its
dispatcher set, keep the registrations with their Path in the shared store, and reach the phones
back through Kamailio.
"""
from __future__ import annotations

import hashlib
import re
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from appliance.cluster.kamailio import Kamailio, options_ping
from appliance.store.db import Store
from tests.audio import read_wav, tone_ratio, write_tone_wav
from tests.peers.engine import Engine, free_port
from tests.peers.kamailio import FRONT_DOOR_IP, behind_front_door, front_door, hop
from tests.peers.pjsua import PjPhone
from tests.peers.polling import wait_until
from tests.peers.sipp import auth_row, run_sipp


def _engine(tmp_path: Path, name: str, db: str) -> Engine:
    return behind_front_door(Engine(tmp_path / name, db=db, extra_args=["--node", name]))


def test_a_registration_through_kamailio_is_stored_with_its_path(tmp_path: Path, postgres_url: str) -> None:
    one = _engine(tmp_path, "one", postgres_url)
    with one.running(), front_door(tmp_path / "kamailio", [one]) as kam:
        with PjPhone("a") as a:
            a.register("1001", one.secret("1001"), FRONT_DOOR_IP, kam.door.port)
            with Store(postgres_url) as store:
                [reg] = store.registrations(aor="1001")
    # RFC 3327: the front door put itself on the path, with the phone's own address as received.
    assert reg.path.startswith(f"<sip:{FRONT_DOOR_IP}:{kam.door.port};lr;received=sip:127.0.0.1")
    assert (reg.source_host, reg.transport) == ("127.0.0.1", "udp")  # the phone's, not Kamailio's
    assert reg.source_port != kam.door.port


def _holder(engines: list[Engine], aor: str) -> Engine | None:
    """The engine whose own registrar took ``aor``'s REGISTER (its /v1/registrations)."""
    for engine in engines:
        if any(r["aor"] == aor for r in engine.api("GET", "/v1/registrations")[1]):
            return engine
    return None


@contextmanager
def _phone_on(engines: list[Engine], kam: Kamailio, ext: str, avoid: Engine | None,
              **kw: Any) -> Iterator[tuple[PjPhone, Engine]]:
    """A phone registered through Kamailio whose REGISTER landed on an engine other than
    ``avoid``: Kamailio hashes the Call-ID, so a new phone (a new Call-ID) is tried until one does."""
    for attempt in range(12):
        with PjPhone(f"{ext}-{attempt}", **kw) as phone:
            phone.register(ext, engines[0].secret(ext), FRONT_DOOR_IP, kam.door.port)
            holder = wait_until(lambda: _holder(engines, ext), what=f"{ext}'s engine")
            if holder is not avoid:
                yield phone, holder
                return
            phone.unregister()
    raise AssertionError(f"12 REGISTERs of {ext} all landed on {avoid and avoid.work_dir.name}")


def test_a_call_between_phones_registered_on_different_engines_through_kamailio_has_tones_both_ways(
        tmp_path: Path, postgres_url: str) -> None:
    tone_a = write_tone_wav(tmp_path / "a.wav", 1000, 3.0, rate=8000, amplitude=8000)
    tone_b = write_tone_wav(tmp_path / "b.wav", 2000, 3.0, rate=8000, amplitude=8000)
    rec_a, rec_b = tmp_path / "rec_a.wav", tmp_path / "rec_b.wav"
    engines = [_engine(tmp_path, "one", postgres_url), _engine(tmp_path, "two", postgres_url)]
    with engines[0].running(), engines[1].running(), front_door(tmp_path / "kamailio", engines) as kam:
        with _phone_on(engines, kam, "1001", None, log_level=5) as (a, on_a), \
                _phone_on(engines, kam, "1002", on_a, log_level=5) as (b, on_b):
            assert on_a is not on_b  # the two REGISTERs landed on different engines
            ca = a.call(f"sip:1002@{FRONT_DOOR_IP}:{kam.door.port}", play_wav=tone_a, record_wav=rec_a)
            cb = b.wait_incoming()
            b.answer(cb, play_wav=tone_b, record_wav=rec_b)
            a.wait_state(ca, "CONFIRMED")
            a.wait_rx_audio(ca, 1.5)
            b.wait_rx_audio(cb, 1.5)
            incoming = b.incoming_info(cb)
            a.hangup(ca)  # the BYE follows Record-Route through Kamailio to the engine
            b.wait_state(cb, "DISCONNECTED")
            logs = a.log_text() + b.log_text()
        with Store(postgres_url) as store:
            closed = wait_until(lambda: [c for c in store.cdrs() if c.disposition], what="the closed CDR")
    assert [(c.caller, c.callee, c.disposition) for c in closed] == [("1001", "1002", "ANSWERED")]
    assert tone_ratio(*reversed(read_wav(rec_b)), 1000) > 0.7
    assert tone_ratio(*reversed(read_wav(rec_a)), 2000) > 0.7
    # Phones see one address: Kamailio's. No engine's SIP address in anything they received
    # (Contact, Record-Route, Via: topoh masks them), and b was called from the front door.
    assert f"@{FRONT_DOOR_IP}" in incoming["remote_contact"] or FRONT_DOOR_IP in incoming["remote_contact"]
    for engine in engines:
        assert f"127.0.0.1:{engine.sip_port}" not in logs, f"engine {engine.work_dir.name}'s address reached a phone"
    assert "Record-Route: <sip:127.0.0.2" in logs


def test_kill_9_of_an_engine_takes_it_out_of_kamailio_s_set_within_5_s_and_new_calls_complete_on_the_survivor(
        tmp_path: Path, postgres_url: str) -> None:
    victim, survivor = _engine(tmp_path, "one", postgres_url), _engine(tmp_path, "two", postgres_url)
    victim.start()
    try:
        with survivor.running(), front_door(tmp_path / "kamailio", [victim, survivor]) as kam:
            wait_until(lambda: len(kam.active_engines()) == 2, what="both engines in the set")
            with PjPhone("a") as a, PjPhone("b", auto_answer=True) as b:
                a.register("1001", victim.secret("1001"), FRONT_DOOR_IP, kam.door.port)
                b.register("1002", victim.secret("1002"), FRONT_DOOR_IP, kam.door.port)
                victim.kill9()
                killed = time.monotonic()
                # The dead engine's port, held by us: whatever Kamailio still sends it lands here.
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tomb:
                    tomb.bind((victim.sip_ip, victim.sip_port))
                    tomb.setblocking(False)
                    wait_until(lambda: (victim.sip_ip, victim.sip_port) not in kam.active_engines(),
                               timeout=5.0, what="the dead engine out of Kamailio's set")
                    out_after = time.monotonic() - killed
                    first_call = None
                    for _ in range(4):  # four new Call-IDs: by the hash, some would have gone to the victim
                        call = a.call(f"sip:1002@{FRONT_DOOR_IP}:{kam.door.port}")
                        a.wait_state(call, "CONFIRMED")
                        first_call = first_call or time.monotonic() - killed
                        assert len(survivor.api("GET", "/v1/calls")[1]) == 1
                        a.hangup(call)
                        a.wait_state(call, "DISCONNECTED")
                    sent_to_dead = []
                    while True:
                        try:
                            sent_to_dead.append(tomb.recv(65535).split(b" ", 1)[0])
                        except BlockingIOError:
                            break
        print(f"\nkill -9: out of Kamailio's set after {out_after:.2f} s; "
              f"first new call completed on the survivor {first_call:.2f} s after the kill")
        assert out_after < 5.0
        assert b"INVITE" not in sent_to_dead  # the keepalive OPTIONS go on; no call
    finally:
        victim.stop()


SCENARIOS = Path(__file__).resolve().parents[1] / "sipp" / "engine"
SCANNER_IP = "127.0.0.3"  # neither the phones' 127.0.0.1 nor the front door's 127.0.0.2


def test_a_scanner_through_kamailio_is_blocked_by_its_own_address_while_a_good_phone_keeps_working(
        tmp_path: Path, postgres_url: str) -> None:
    one = _engine(tmp_path, "one", postgres_url)
    one.extra_args += ["--block-after", "3", "--digest-algorithms", "MD5"]  # SIPp answers MD5 only
    with one.running(), front_door(tmp_path / "kamailio", [one]) as kam:
        door = f"{FRONT_DOOR_IP}:{kam.door.port}"
        # Wrong passwords for 1005 from 127.0.0.3, through Kamailio: 401 until the third failure.
        scan = run_sipp(SCENARIOS / "register_wrong.xml", door, calls=5, inject=[auth_row("1005", "guess")],
                        local_port=free_port(host=SCANNER_IP), extra_args=["-i", SCANNER_IP],
                        timeout=15, workdir=tmp_path / "scanner")
        assert scan.successful >= 1, scan.explain()  # the first wrong passwords were answered 401
        blocked = wait_until(lambda: one.api("GET", "/v1/blocked")[1], what="a block")
        assert [b["address"] for b in blocked] == [SCANNER_IP]  # the scanner, not the front door
        assert scan.failed >= 1, scan.explain()  # once blocked: 403, no more challenges
        assert "SIP/2.0 403" in scan.messages
        # A good phone through the same front door registers and calls (the callee over TCP).
        with PjPhone("a") as a, PjPhone("b", transport="tcp", auto_answer=True) as b:
            a.register("1001", one.secret("1001"), FRONT_DOOR_IP, kam.door.port)
            b.register("1002", one.secret("1002"), FRONT_DOOR_IP, kam.door.port)
            call = a.call(f"sip:1002@{door}")
            a.wait_state(call, "CONFIRMED")
            a.hangup(call)
            a.wait_state(call, "DISCONNECTED")


def _register(engine: Engine, sock: socket.socket, call_id: str, cseq: int, auth: str = "") -> bytes:
    host, port = sock.getsockname()
    lines = [f"REGISTER sip:{engine.sip_ip}:{engine.sip_port} SIP/2.0",
             f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{uuid.uuid4().hex};rport",
             "Max-Forwards: 70", f"From: <sip:1003@{engine.sip_ip}>;tag=f{cseq}", f"To: <sip:1003@{engine.sip_ip}>",
             f"Call-ID: {call_id}", f"CSeq: {cseq} REGISTER", f"Contact: <sip:1003@{host}:{port}>", "Expires: 60"]
    if auth:
        lines.append(f"Authorization: {auth}")
    sock.sendto(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode(), (engine.sip_ip, engine.sip_port))
    while True:
        reply = sock.recv(65535)
        if not reply.startswith(b"SIP/2.0 1"):
            return reply


def test_a_register_challenged_by_one_engine_is_accepted_by_another(tmp_path: Path, postgres_url: str) -> None:
    """Behind the front door a phone's answer to a challenge may reach another engine: the
    engines of one site share the nonce key (store/site_secrets.py), so its nonce is good there."""
    one, two = _engine(tmp_path, "one", postgres_url), _engine(tmp_path, "two", postgres_url)
    with one.running(), two.running(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(3.0)
        call_id = uuid.uuid4().hex
        challenge = _register(one, sock, call_id, 1).decode()
        assert challenge.startswith("SIP/2.0 401")
        md5 = next(line for line in challenge.split("\r\n")
                   if line.startswith("WWW-Authenticate:") and "algorithm=MD5" in line)
        nonce = re.search(r'nonce="([^"]+)"', md5).group(1)  # type: ignore[union-attr]
        opaque = re.search(r'opaque="([^"]+)"', md5).group(1)  # type: ignore[union-attr]
        uri = f"sip:{two.sip_ip}:{two.sip_port}"

        def h(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()
        ha1, ha2 = h(f"1003:plateau:{one.secret('1003')}"), h(f"REGISTER:{uri}")
        response = h(f"{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}")
        auth = (f'Digest username="1003", realm="plateau", nonce="{nonce}", uri="{uri}", response="{response}", '
                f'algorithm=MD5, qop=auth, nc=00000001, cnonce="c0ffee", opaque="{opaque}"')
        answer = _register(two, sock, call_id, 2, auth).decode()
    assert answer.startswith("SIP/2.0 200"), answer


def test_the_engines_set_changes_while_kamailio_runs(tmp_path: Path, postgres_url: str) -> None:
    one, two = _engine(tmp_path, "one", postgres_url), _engine(tmp_path, "two", postgres_url)
    with one.running(), two.running(), front_door(tmp_path / "kamailio", [one]) as kam:
        wait_until(lambda: kam.active_engines() == {(one.sip_ip, one.sip_port)}, what="engine one alone")
        kam.set_engines([hop(one), hop(two)])
        # Both answer the keepalive OPTIONS with 200, or the dispatcher would not count them in.
        wait_until(lambda: kam.active_engines() == {(e.sip_ip, e.sip_port) for e in (one, two)},
                   what="both engines in the set")


FLOOD_IP = "127.0.0.4"


def _flood(host: str, port: int, method: str, count: int) -> list[int]:
    """``count`` requests from FLOOD_IP at once, without waiting; the status codes answered in 1 s."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((FLOOD_IP, 0))
        lport = sock.getsockname()[1]
        for i in range(count):
            sock.sendto((f"{method} sip:{host}:{port} SIP/2.0\r\n"
                         f"Via: SIP/2.0/UDP {FLOOD_IP}:{lport};branch=z9hG4bK{uuid.uuid4().hex};rport\r\n"
                         f"Max-Forwards: 70\r\nTo: <sip:1001@{host}>\r\nFrom: <sip:1001@{host}>;tag=t{i}\r\n"
                         f"Call-ID: flood-{i}-{uuid.uuid4().hex}\r\nCSeq: 1 {method}\r\n"
                         f"Contact: <sip:1001@{FLOOD_IP}:{lport}>\r\nContent-Length: 0\r\n\r\n").encode(), (host, port))
        codes: list[int] = []
        deadline = time.monotonic() + 1.0
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                first = sock.recv(65535).split(b"\r\n", 1)[0].split()
            except TimeoutError:
                break
            if int(first[1]) >= 200:
                codes.append(int(first[1]))
        return codes


def test_pike_drops_one_source_s_flood_and_ratelimit_caps_the_site_s_registers(
        tmp_path: Path, postgres_url: str) -> None:
    one = _engine(tmp_path, "one", postgres_url)
    with one.running(), front_door(tmp_path / "kamailio", [one], pike_requests=30, pike_seconds=2,
                                   rate_register=5) as kam:
        host, port = FRONT_DOOR_IP, kam.door.port
        registers = _flood(host, port, "REGISTER", 20)
        assert registers.count(503) >= 10 and registers.count(401) <= 10, registers  # 5 a second pass
        wait_until(lambda: options_ping(host, port) == 200, what="the phones' address still served")
        options = _flood(host, port, "OPTIONS", 300)
        assert 0 < len(options) < 150, len(options)  # pike: the rest of the flood dropped unanswered
        assert options_ping(host, port) == 200  # another source (127.0.0.1) is not held up
