"""Issue 12 finding 3 as an attacker plays it: toll fraud through in-dialog REFER.

A SIPp carrier (the trunk's configured host:port) calls a DID, the extension (a pjsua2 phone)
answers, then the carrier sends REFER to an international number. A stranger who sniffed a
dialog's Call-ID and tags sends REFER from another port. A forward and a click-to-call towards
a route the extension may not use. In each case the premium route's peer, another pjsua2
phone standing for the international carrier, must never ring.
"""
from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers.engine import Engine, default_config, free_port
from tests.peers.pjsua import PeerError, PjPhone
from tests.peers.pjsua import registered_phone as _phone
from tests.peers.polling import wait_until
from tests.peers.sipp import SippProcess, auth_row

SCENARIOS = Path(__file__).resolve().parents[1] / "sipp"
OUR_DID = "+33140000099"
PREMIUM = "0044900123456"


def _config(carrier_port: int, intl_port: int) -> dict[str, Any]:
    cfg = default_config()
    exts = {e["number"]: e for e in cfg["extensions"]}
    exts["1001"].update(dial_permissions=["national"])
    exts["1004"].update(dial_permissions=["national"], forward_always=PREMIUM)
    cfg["trunks"] = [
        {"name": "carrier", "host": "127.0.0.1", "port": carrier_port, "transport": "udp"},
        {"name": "intl", "host": "127.0.0.1", "port": intl_port, "transport": "udp"},
    ]
    cfg["outbound_routes"] = [
        {"name": "national", "pattern": "_0[1-9]XXXXXXXX", "trunk": "carrier"},
        {"name": "international", "pattern": "_00X.", "trunk": "intl"},
    ]
    cfg["inbound_routes"] = [{"did": OUR_DID, "destination": "1002"}]
    return cfg


@pytest.fixture
def intl() -> Iterator[PjPhone]:
    with PjPhone("intl") as phone:
        yield phone


@pytest.fixture
def carrier_port() -> int:
    return free_port()


@pytest.fixture
def pbx(tmp_path: Path, carrier_port: int, intl: PjPhone) -> Iterator[Engine]:
    # SIPp only answers MD5 digest challenges (as in test_engine_sipp.py).
    eng = Engine(tmp_path / "engine", config=_config(carrier_port, intl.sip_port),
                 extra_args=["--digest-algorithms", "MD5,SHA-256"])
    with eng.running():
        yield eng


def _never_rings(phone: PjPhone, timeout: float = 2.0) -> None:
    with pytest.raises(PeerError):
        phone.wait_incoming(timeout=timeout)


def _final_sipfrag(messages: str) -> list[str]:
    return re.findall(r"SIP/2\.0 ([2-6]\d\d) [^\r\n]*\s*$", messages, re.MULTILINE)


def _status(pbx: Engine) -> dict[str, Any]:
    code, body = pbx.api("GET", "/v1/status")
    assert code == 200, body
    return dict(body)


def test_refer_from_the_carrier_leg_places_no_international_call(
        pbx: Engine, carrier_port: int, intl: PjPhone, tmp_path: Path) -> None:
    with _phone(pbx, "b", "1002") as b:
        carrier = SippProcess(SCENARIOS / "uac_refer.xml", local_port=carrier_port,
                              target=f"127.0.0.1:{pbx.sip_port}", calls=1,
                              inject=[["carrier", "X-Carrier: test", PREMIUM]],
                              extra_args=["-s", OUR_DID, "-timeout", "20s"], workdir=tmp_path / "carrier")
        with carrier:
            cb = b.wait_incoming(timeout=8.0)
            b.answer(cb)
            result = carrier.wait(timeout=25.0)
        _never_rings(intl)
        notified = re.findall(r"^SIP/2\.0 (\d{3})", result.messages, re.MULTILINE)
        assert "403" in notified, result.explain()
        # A refused transfer keeps the call: the carrier's own BYE, 3 s later, ends it (200).
        assert result.returncode == 0, result.explain()
        b.wait_state(cb, "DISCONNECTED")


def test_refer_from_a_stranger_address_is_refused_and_counted(pbx: Engine, tmp_path: Path) -> None:
    with _phone(pbx, "b", "1002") as b, _phone(pbx, "c", "1003") as c:
        work = tmp_path / "a"
        a = SippProcess(SCENARIOS / "engine" / "uac_call_hold_tags.xml", target=f"127.0.0.1:{pbx.sip_port}",
                        calls=1, inject=[auth_row("1001", pbx.secret("1001"))],
                        extra_args=["-s", "1002", "-timeout", "20s"], workdir=work)
        with a:
            cb = b.wait_incoming(timeout=8.0)
            b.answer(cb)
            dialog = work / "dialog.txt"
            wait_until(lambda: dialog.exists() and len(dialog.read_text().splitlines()) == 3, timeout=8.0,
                       what="the SIPp caller wrote its dialog identifiers")
            call_id, from_tag, to_header = dialog.read_text().splitlines()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", 0))
                s.settimeout(5.0)
                port = s.getsockname()[1]
                refer = (
                    f"REFER sip:1002@127.0.0.1:{pbx.sip_port} SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-stranger-1;rport\r\n"
                    "Max-Forwards: 70\r\n"
                    f"From: <sip:1001@127.0.0.1:{pbx.sip_port}>;tag={from_tag}\r\n"
                    f"To: {to_header}\r\n"
                    f"Call-ID: {call_id}\r\n"
                    "CSeq: 10 REFER\r\n"
                    f"Contact: <sip:1001@127.0.0.1:{port}>\r\n"
                    f"Refer-To: <sip:1003@127.0.0.1:{pbx.sip_port}>\r\n"
                    "Content-Length: 0\r\n\r\n"
                )
                s.sendto(refer.encode(), ("127.0.0.1", pbx.sip_port))
                reply = s.recv(65535).decode(errors="replace")
            assert reply.startswith("SIP/2.0 403"), reply
            _never_rings(c)
            # The real dialog is untouched: the caller's own BYE (after 8 s) ends it normally.
            res = a.wait(timeout=20.0)
            assert res.returncode == 0, res.explain()
        assert _status(pbx)["in_dialog"]["foreign_source"] >= 1


def test_forward_to_a_route_the_forwarding_extension_may_not_use_is_refused(
        pbx: Engine, intl: PjPhone) -> None:
    with _phone(pbx, "a", "1001") as a:
        ca = a.call(pbx.uri("1004"))
        a.wait_state(ca, "DISCONNECTED", timeout=10.0)
        assert a.last_status(ca) == 403
        _never_rings(intl, timeout=1.0)


def test_originate_to_a_forbidden_route_is_refused_before_anything_rings(pbx: Engine, intl: PjPhone) -> None:
    with _phone(pbx, "a", "1001") as a:
        code, body = pbx.api("POST", "/v1/originate", {"from": "1001", "to": PREMIUM})
        assert code == 403, body
        assert "international" in body["error"], body
        with pytest.raises(PeerError):
            a.wait_incoming(timeout=1.0)  # the extension is not rung for a call that cannot go out
        _never_rings(intl, timeout=0.5)
