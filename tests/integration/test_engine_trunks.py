"""SIP trunks: outbound routes with the toll-fraud guard, forward to a mobile, DIDs, registration.

The carrier is a real peer: a pjsua2 phone listening where the trunk points (calls),
and a SIPp registrar that checks our digest answer (registration).
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.audio import read_wav, tone_ratio, write_tone_wav
from tests.peers.engine import Engine, default_config
from tests.peers.pjsua import PeerError, PjPhone
from tests.peers.pjsua import registered_phone as _phone
from tests.peers.polling import wait_until
from tests.peers.sipp import SippProcess

MOBILE = "0612345678"
OUR_DID = "+33140000099"


def _carrier_config(carrier_port: int, register: bool = False) -> dict[str, Any]:
    cfg = default_config()
    exts = {e["number"]: e for e in cfg["extensions"]}
    exts["1001"].update(dial_permissions=["national"], external_caller_id="+33140000001")
    exts["1003"].update(dial_permissions=["national"], forward_always=MOBILE)
    cfg["trunks"] = [{"name": "carrier", "host": "127.0.0.1", "port": carrier_port, "transport": "udp",
                      "username": "plateau", "secret": "trunkpass1", "register": register,
                      "register_expires": 300}]
    cfg["outbound_routes"] = [{"name": "national", "pattern": "_0XXXXXXXXX", "trunk": "carrier"}]
    cfg["inbound_routes"] = [{"did": OUR_DID, "destination": "1002"}]
    return cfg


@pytest.fixture
def carrier() -> Iterator[PjPhone]:
    with PjPhone("carrier") as phone:
        yield phone


@pytest.fixture
def pbx(tmp_path: Path, carrier: PjPhone) -> Iterator[Engine]:
    eng = Engine(tmp_path / "engine", config=_carrier_config(carrier.sip_port))
    with eng.running():
        yield eng


def test_outbound_call_goes_out_of_the_trunk_with_the_external_caller_id(
        pbx: Engine, carrier: PjPhone, tmp_path: Path) -> None:
    tone = write_tone_wav(tmp_path / "t.wav", 1000, 3.0)
    rec = tmp_path / "carrier.wav"
    with _phone(pbx, "a", "1001") as a:
        ca = a.call(pbx.uri("0123456789"), play_wav=tone)
        cc = carrier.wait_incoming()
        info = carrier.incoming_info(cc)
        assert "sip:0123456789@" in info["local_uri"]
        assert info["remote_uri"].startswith("sip:+33140000001@")
        carrier.answer(cc, record_wav=rec)
        a.wait_state(ca, "CONFIRMED")
        carrier.wait_rx_audio(cc, 1.5)
        a.hangup(ca)
        carrier.wait_state(cc, "DISCONNECTED")
    rate, got = read_wav(rec)
    assert tone_ratio(got, rate, 1000) > 0.7


def test_extension_without_permission_is_refused_and_nothing_is_dialled(
        pbx: Engine, carrier: PjPhone) -> None:
    with _phone(pbx, "b", "1002") as b:
        cb = b.call(pbx.uri("0123456789"))
        b.wait_state(cb, "DISCONNECTED", timeout=10.0)
        assert b.last_status(cb) == 403
    with pytest.raises(PeerError):
        carrier.wait_incoming(timeout=1.0)


def test_forward_to_a_mobile_through_the_trunk(pbx: Engine, carrier: PjPhone) -> None:
    with _phone(pbx, "a", "1001") as a:
        ca = a.call(pbx.uri("1003"))
        cc = carrier.wait_incoming()
        assert f"sip:{MOBILE}@" in carrier.incoming_info(cc)["local_uri"]
        carrier.answer(cc)
        a.wait_state(ca, "CONFIRMED")
        a.hangup(ca)
        carrier.wait_state(cc, "DISCONNECTED")


def test_inbound_call_is_routed_by_did(pbx: Engine, carrier: PjPhone) -> None:
    with _phone(pbx, "b", "1002") as b:
        cc = carrier.call(pbx.uri(OUR_DID))
        cb = b.wait_incoming()
        assert b.incoming_info(cb)["remote_uri"].startswith("sip:carrier@")
        b.answer(cb)
        carrier.wait_state(cc, "CONFIRMED")
        carrier.hangup(cc)
        b.wait_state(cb, "DISCONNECTED")


def test_unknown_did_is_rejected(pbx: Engine, carrier: PjPhone) -> None:
    cc = carrier.call(pbx.uri("+33999999999"))
    carrier.wait_state(cc, "DISCONNECTED", timeout=10.0)
    assert carrier.last_status(cc) == 404


def test_trunk_registers_with_digest(tmp_path: Path) -> None:
    with SippProcess("uas_registrar", inject=[["plateau", "trunkpass1"]], calls=1) as registrar:
        eng = Engine(tmp_path / "engine", config=_carrier_config(registrar.port, register=True))
        eng.start()
        try:
            wait_until(lambda: eng.api("GET", "/v1/status")[1]["trunks"][0]["state"] == "registered",
                       timeout=10.0, what="the trunk registered")
        finally:
            eng.stop()


def test_trunk_refreshes_before_its_registration_expires(tmp_path: Path) -> None:
    with SippProcess("uas_registrar_refresh", inject=[["plateau", "trunkpass1"]], calls=1,
                     workdir=tmp_path / "registrar") as registrar:
        eng = Engine(tmp_path / "engine", config=_carrier_config(registrar.port, register=True))
        eng.start()
        t0 = time.monotonic()
        try:
            res = registrar.wait(timeout=10.0)
            elapsed = time.monotonic() - t0
            assert res.returncode == 0 and res.successful == 1, res.explain()
            # Granted 5 s: the refresh is due at 80 % (4 s), before the binding lapses at 5 s.
            assert 3.0 < elapsed < 4.8, elapsed
            _, status = eng.api("GET", "/v1/status")
            trunk = status["trunks"][0]
            assert trunk["state"] == "registered" and 0 < trunk["expires_in"] <= 5
        finally:
            eng.stop()


def test_caller_hears_the_carriers_early_media(pbx: Engine, carrier: PjPhone, tmp_path: Path) -> None:
    """PSTN ringback and announcements arrive as early media (183 + SDP) and must reach the caller."""
    announcement = write_tone_wav(tmp_path / "ann.wav", 1500, 3.0)
    early = tmp_path / "early.wav"
    with _phone(pbx, "a", "1001") as a:
        ca = a.call(pbx.uri("0123456789"), record_wav=early)
        cc = carrier.wait_incoming()
        carrier.answer(cc, code=183, play_wav=announcement)
        a.wait_state(ca, "EARLY")
        a.wait_rx_audio(ca, 2.0)
        a.stop_record(ca)
        carrier.answer(cc, code=200)
        a.wait_state(ca, "CONFIRMED")
        a.hangup(ca)
        carrier.wait_state(cc, "DISCONNECTED")
    rate, got = read_wav(early)
    assert tone_ratio(got, rate, 1500) > 0.7
