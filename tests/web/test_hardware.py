"""System › Hardware: boards, ports, modems and USB headsets from GET /v1/hardware, in every state, admin only.

The engine's answer is made by the real hw.manager.HardwareManager (not started: no serial device
is opened) from a hardware.yaml, with its links and ports put in the states a running engine would
reach, so the page is tested against the shape the engine really sends.
"""
from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.api.facade import ApiError, ApiUnavailable
from appliance.store.db import Store
from appliance.store.models import Extension
from hw.frames import Caps, PortCaps, PortKind
from hw.headset import HeadsetConfig
from hw.headsets import HeadsetRecord, HeadsetSupervisor
from hw.link import LinkState
from hw.manager import HardwareManager
from tests.web.conftest import PASSWORD, FakeEngineApi, login, store_of
from web import accounts, create_app
from web.system.hardware import alarm_words, duration_text, format_value

HW = ("GET", "/v1/hardware")

HARDWARE_YAML = """
boards:
  - device: /dev/serial/by-id/usb-Plateau_LineBoard_VB0001-if00
    name: front-desk
    ports:
      0: {fxs: "1005"}
      1: {fxs: {extension: "1099", cadence: UK, cid: dtmf}}
      2: {fxo: {did: "0140000000", trunk_name: analog}}
  - device: /dev/ttyACM7
    name: old-board
    ports:
      0: {fxs: "1006"}
  - device: /dev/ttyACM9
    name: unplugged
    ports:
      0: {fxo: {did: "0140000001"}}
"""


def _manager(path: Path, text: str) -> HardwareManager:
    path.write_text(text)
    return HardwareManager(None, None, lambda _delay, _fn: None, path, call_soon=lambda fn: fn())


@pytest.fixture
def engine_status(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """HardwareManager.status() with one board up, one refused, one gone."""
    mgr = _manager(tmp_path / "hardware.yaml", HARDWARE_YAML)
    try:
        front, old, gone = mgr.boards
        # front-desk: up, as BoardLink leaves it after CAPS, with some link trouble counted.
        front.link.state = LinkState.UP
        front.link.caps = Caps(1, 1, 4, (PortCaps(PortKind.FXS, 1), PortCaps(PortKind.FXS, 1),
                                         PortCaps(PortKind.FXO, 1)), "VB0001")
        front.link.counters.crc_errors, front.link.counters.frames_in = 3, 1200
        for port in front.ports.values():
            port.board_up()
        # Port 0: the phone is off-hook (STATUS state 1, 24.5 mA); port 2: a 48 V line with alarms.
        front.ports[0].board_state, front.ports[0].line = 1, 245
        front.ports[2].line, front.ports[2].alarms = 480, 0b101
        # old-board: answered with protocol version 2.
        old.link.state = LinkState.REFUSED
        old.refused_version = 2
        # unplugged: never opened; its port still holds a reading from before, which must not show.
        gone.ports[0].line = 470
        gone.link.last_error = "open: [Errno 2] could not open port /dev/ttyACM9"
        yield mgr.status()
    finally:
        mgr.stop()


def _page(client: FlaskClient) -> tuple[int, str]:
    resp = client.get("/system/hardware")
    return resp.status_code, resp.get_data(as_text=True)


def _text(html: str) -> str:
    """Visible text, whitespace collapsed: what the admin reads."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _add_extension(app: Flask, number: str, name: str) -> None:
    store = store_of(app)
    try:
        store.put_extension(Extension(number, name, "s3cret-pass"))
    finally:
        store.close()


def test_boards_ports_and_their_states(app: Flask, admin: FlaskClient, engine_api: FakeEngineApi,
                                       engine_status: dict[str, Any]) -> None:
    _add_extension(app, "1005", "Reception phone")
    engine_api.responses[HW] = engine_status
    code, html = _page(admin)
    assert code == 200
    text = _text(html)
    # Board up: green badge, firmware, serial, device, the three link error counters.
    front = html[html.index('data-board="front-desk"'):html.index('data-board="old-board"')]
    assert 'hw-state ok' in front and ">up<" in front
    assert "1.4" in front and "VB0001" in front and "/dev/serial/by-id/usb-Plateau_LineBoard_VB0001-if00" in front
    assert re.search(r'hw-counter trouble">\s*CRC\s*<strong>3</strong>', front)
    assert re.search(r'framing\s*<strong>0</strong>', front) and re.search(r'sequence gaps\s*<strong>0</strong>', front)
    # Ports: kind, what they are in the PBX, state, line figure, alarms in words.
    rows = {m.group(1): _text(m.group(2)) for m in re.finditer(r'<tr data-port="(\d+)">(.*?)</tr>', front, re.S)}
    assert "FXS" in rows["0"] and "Extension 1005 · Reception phone" in rows["0"]
    assert "idle · off-hook" in rows["0"] and "24.5 mA" in rows["0"] and "none" in rows["0"]
    assert "Extension 1099 · not configured in Admin" in rows["1"] and 'class="hw-warn"' in front
    assert "idle · on-hook" in rows["1"] and "idle · idle" not in rows["2"]
    assert "FXO" in rows["2"] and "DID 0140000000 · trunk analog" in rows["2"] and "48.0 V" in rows["2"]
    assert "no line" in rows["2"] and "over-temperature" in rows["2"] and "over-current" not in rows["2"]
    # Refused: red badge and the protocol version it spoke; its port is out of service.
    old = html[html.index('data-board="old-board"'):html.index('data-board="unplugged"')]
    assert 'hw-state bad' in old and ">refused<" in old and "protocol version 2" in old
    assert "out-of-service" in old
    # Gone: red badge, why the device cannot be opened.
    gone = html[html.index('data-board="unplugged"'):]
    assert 'hw-state bad' in gone and ">gone<" in gone and "could not open port /dev/ttyACM9" in _text(gone)
    assert "DID 0140000001 · trunk analog" in _text(gone)
    assert "47.0 V" not in gone and re.search(r'<td class="hw-num">–</td>', gone)
    assert "Engine not running" not in text and "No hardware configured" not in text
    # The tab is there and active, and the refresh script is local.
    assert re.search(r'href="/system/hardware" class="active">Hardware', html)
    assert '<script src="/static/hardware.js">' in html and "https://" not in html


def test_board_handshaking_is_connecting(admin: FlaskClient, engine_api: FakeEngineApi, tmp_path: Path) -> None:
    mgr = _manager(tmp_path / "hardware.yaml", "boards: [{device: /dev/ttyACM0, ports: {0: {fxs: '1005'}}}]")
    try:
        mgr.boards[0].link.state = LinkState.HANDSHAKE
        engine_api.responses[HW] = mgr.status()
    finally:
        mgr.stop()
    code, html = _page(admin)
    assert code == 200 and "hw-state warn" in html and ">connecting<" in html and "board0" in html


def test_no_hardware_configured(admin: FlaskClient, engine_api: FakeEngineApi) -> None:
    engine_api.responses[HW] = {"config": None, "error": None, "boards": []}  # EngineApi.hardware without a yaml
    code, html = _page(admin)
    assert code == 200 and "No hardware configured" in html and "data/hardware.yaml" in html
    assert "data-board" not in html and "Engine not running" not in html


def test_config_error_is_shown(admin: FlaskClient, engine_api: FakeEngineApi, tmp_path: Path) -> None:
    mgr = _manager(tmp_path / "hardware.yaml", "boards:\n  - device: /dev/ttyACM0\n    ports: {2: {fxo: {}}}\n")
    try:
        engine_api.responses[HW] = mgr.status()
    finally:
        mgr.stop()
    code, html = _page(admin)
    assert code == 200
    assert "The hardware configuration is not used" in html and "boards[0].ports.2.fxo.did: required" in html
    assert str(tmp_path / "hardware.yaml") in html and "No hardware configured" not in html


def test_every_config_error_is_shown_beside_its_path(admin: FlaskClient, engine_api: FakeEngineApi,
                                                     tmp_path: Path) -> None:
    mgr = _manager(tmp_path / "hardware.yaml",
                   "boards:\n  - device: /dev/ttyACM0\n    ports: {2: {fxo: {}}, 3: {fxo: {}}}\n")
    try:
        engine_api.responses[HW] = mgr.status()
    finally:
        mgr.stop()
    code, html = _page(admin)
    assert code == 200
    for path in ("boards[0].ports.2.fxo.did", "boards[0].ports.3.fxo.did"):
        assert f'<li data-path="{path}">{path}: required</li>' in html, html


@pytest.mark.parametrize("failure, words", [
    (ApiUnavailable("connection refused"), "The engine is not running (connection refused)"),
    (ApiError(500, "boom"), "The engine answered with an error: boom"),
])
def test_engine_down(admin: FlaskClient, engine_api: FakeEngineApi, failure: Exception, words: str) -> None:
    engine_api.responses[HW] = failure
    code, html = _page(admin)
    assert code == 200 and "Engine not running" in html and words in html and "data-board" not in html
    resp = admin.get("/system/hardware.json")
    assert resp.status_code == 200 and resp.json is not None
    assert resp.json["engine_up"] is False and words in resp.json["html"]


def test_engine_never_started_is_engine_down(tmp_path: Path) -> None:
    """No api.json at all (the real client stand-in): the same clear state, not a 500."""
    data = tmp_path / "fresh"
    data.mkdir()
    store = Store(data / "plateau.db")
    try:
        accounts.create_user(store, "admin", PASSWORD, "admin", 0.0, must_change=False)
    finally:
        store.close()
    client = login(create_app(data, testing=True, secret_key="k").test_client(), "admin")
    code, html = _page(client)
    assert code == 200 and "Engine not running" in html


def test_refresh_json_follows_the_engine(admin: FlaskClient, engine_api: FakeEngineApi,
                                         engine_status: dict[str, Any]) -> None:
    engine_api.responses[HW] = {"config": None, "error": None, "boards": []}
    first = admin.get("/system/hardware.json")
    assert first.status_code == 200 and first.mimetype == "application/json"
    assert first.headers["Cache-Control"] == "no-store"
    assert first.json is not None and first.json["configured"] is False
    assert "No hardware configured" in first.json["html"]
    engine_api.responses[HW] = engine_status
    second = admin.get("/system/hardware.json")
    body = second.json
    assert body is not None and body["engine_up"] is True and body["configured"] is True
    assert 'data-board="front-desk"' in body["html"] and "48.0 V" in body["html"]
    assert "<html" not in body["html"] and "hw-body" not in body["html"]  # the fragment only
    assert engine_api.requests.count(("GET", "/v1/hardware", None)) == 2


def test_modems_and_unknown_keys_are_rendered(app: Flask, admin: FlaskClient, engine_api: FakeEngineApi,
                                              engine_status: dict[str, Any]) -> None:
    status = dict(engine_status)
    status["boards"][0]["temperature_c"] = 41.5
    status["boards"][0]["ports"][0]["gain_db"] = {"tx": -3, "rx": 2}
    # hw/modem_line.py ModemLinePort.status, plus a key this page has never heard of.
    status["modems"] = [
        {"name": "modem0", "kind": "modem", "device": "/dev/ttyACM3", "did": "0140000002", "trunk": "analog-modem",
         "state": "connected", "modem_state": "voice", "ulaw_code": 4, "duplex": True, "error": None,
         "channel": "modem0-7", "counters": {"calls_in": 3, "calls_out": 1, "outages": 0}},
        {"name": "modem1", "kind": "modem", "device": "/dev/ttyACM4", "did": "0140000003", "trunk": "analog",
         "state": "out-of-service", "modem_state": "offline", "error": "<script>x</script> no answer to ATZ",
         "channel": None, "counters": {}, "firmware_banner": "U.S. Robotics 56K"},
    ]
    status["usb_audio"] = ["Jabra Evolve 40"]
    engine_api.responses[HW] = status
    code, html = _page(admin)
    assert code == 200
    modems = html[html.index("Voice modems"):]
    rows = {m.group(1): _text(m.group(2)) for m in re.finditer(r'<tr data-modem="(\w+)">(.*?)</tr>', modems, re.S)}
    assert "/dev/ttyACM3" in rows["modem0"] and "DID 0140000002 · trunk analog-modem" in rows["modem0"]
    assert "connected · modem voice" in rows["modem0"] and "call modem0-7" in rows["modem0"]
    assert "calls in 3 · calls out 1 · outages 0" in rows["modem0"]
    assert "ulaw code 4" in rows["modem0"] and "duplex yes" in rows["modem0"]
    assert '<span class="dot busy"></span> connected' in modems
    assert '<span class="dot bad"></span> out-of-service' in modems
    assert "no answer to ATZ" in rows["modem1"] and "firmware banner U.S. Robotics 56K" in rows["modem1"]
    assert "&lt;script&gt;x&lt;/script&gt;" in modems and "<script>x" not in html  # escaped
    assert "temperature c" in html and "41.5" in html
    assert "gain db" in html and "tx: -3, rx: 2" in html
    assert "usb audio" in html and "Jabra Evolve 40" in html


def test_modems_only(admin: FlaskClient, engine_api: FakeEngineApi) -> None:
    """hardware.yaml may hold modems and no boards."""
    engine_api.responses[HW] = {"config": "/data/hardware.yaml", "error": None, "boards": [], "modems": [
        {"name": "modem0", "device": "/dev/ttyACM3", "did": "0140000002", "state": "idle"}]}
    code, html = _page(admin)
    assert code == 200 and 'data-modem="modem0"' in html and '<span class="dot ok"></span> idle' in html
    assert "No boards" not in html and "No hardware configured" not in html


def test_admin_only(app: Flask, supervisor: FlaskClient, agent: FlaskClient, engine_api: FakeEngineApi) -> None:
    engine_api.responses[HW] = {"config": None, "error": None, "boards": []}
    for client in (supervisor, agent):
        assert client.get("/system/hardware").status_code == 403
        assert client.get("/system/hardware.json").status_code == 403
    anonymous = app.test_client()
    resp = anonymous.get("/system/hardware.json")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    assert HW not in {(m, p) for m, p, _ in engine_api.requests}  # nobody but an admin reached the engine


def test_tab_on_the_other_system_pages(admin: FlaskClient) -> None:
    for path in ("/system/", "/system/backup"):
        html = admin.get(path).get_data(as_text=True)
        assert '<a href="/system/hardware" class="">Hardware</a>' in html


def test_refresh_is_wired_with_local_assets(admin: FlaskClient, engine_api: FakeEngineApi) -> None:
    engine_api.responses[HW] = {"config": None, "error": None, "boards": []}
    _code, html = _page(admin)
    assert '<div id="hw-body" data-src="/system/hardware.json" data-interval="5000">' in html
    js = admin.get("/static/hardware.js")
    assert js.status_code == 200 and b'getAttribute("data-src")' in js.data
    assert b"setTimeout" in js.data and b"http" not in js.data
    assert admin.get("/static/hardware.css").status_code == 200


def test_alarm_words_and_values() -> None:
    assert alarm_words(0) == [] and alarm_words(None) == []
    assert alarm_words(0b011) == ["no line", "over-current"]
    assert alarm_words(0b1100) == ["over-temperature", "alarm bit 3"]
    assert alarm_words(["fuse blown"]) == ["fuse blown"]
    assert format_value(None) == "–" and format_value(True) == "yes" and format_value([1, "a"]) == "1, a"
    assert format_value({"a": None}) == "a: –" and format_value(2.50) == "2.5"


def _headsets_status() -> list[dict[str, Any]]:
    """hw/headsets.py HeadsetSupervisor.status(): one record per headset, in the states a running engine reaches."""
    now = time.time()
    fresh = HeadsetSupervisor([HeadsetConfig("1010", "pw-1010", "127.0.0.1", 5060, "Plantronics")]).status()
    return [
        asdict(HeadsetRecord("1007", process="up", pid=4242, restarts=0, registered=True, state="talking",
                             peer="sip:1005@127.0.0.1", since=now - 300, last_exit=None, error="")),
        asdict(HeadsetRecord("1008", process="backoff", pid=4250, restarts=3, registered=False, state="talking",
                             peer="sip:stale@x", since=now - 5, last_exit=1,
                             error="<b>no such audio device</b> 'Jabra EVOLVE 20'")),
        asdict(HeadsetRecord("1009", process="failed", pid=None, restarts=1, registered=False, state="stopped",
                             since=now - 7200, last_exit=0, error="REGISTER refused: 403 Forbidden")),
        *fresh,
    ]


def test_usb_headsets_in_every_state(app: Flask, admin: FlaskClient, engine_api: FakeEngineApi,
                                     engine_status: dict[str, Any]) -> None:
    _add_extension(app, "1007", "Sales headset")
    status = dict(engine_status)
    status["headsets"] = _headsets_status()
    engine_api.responses[HW] = status
    code, html = _page(admin)
    assert code == 200
    section = html[html.index("USB headsets"):]
    rows = {m.group(1): m.group(2) for m in re.finditer(r'<tr data-headset="(\d+)">(.*?)</tr>', section, re.S)}
    assert list(rows) == ["1007", "1008", "1009", "1010"]
    up, backoff, failed, fresh = (rows[k] for k in ("1007", "1008", "1009", "1010"))
    # Up: green process badge, registered, in a call with its peer, no restarts, no error.
    assert 'hw-state ok" title="running and registered' in up and ">up<" in up
    assert "Sales headset" in _text(up) and "for 5 min" in _text(up) and "pid 4242" in _text(up)
    assert re.search(r'hw-state ok">yes<', up)
    assert '<span class="dot busy"></span> talking' in up and "sip:1005@127.0.0.1" in up
    assert re.search(r'hw-counter "><strong>0</strong>', up) and "none" in _text(up)
    # Backing off: amber, restarts counted as trouble, its error (escaped) and exit code; its last call is stale.
    assert "hw-state warn" in backoff and ">backoff<" in backoff and "restarting it shortly" in _text(backoff)
    assert 'hw-state idle">no<' in backoff
    assert "talking" not in backoff and "sip:stale" not in backoff and "pid 4250" not in backoff
    assert re.search(r'hw-counter trouble"><strong>3</strong>', backoff)
    assert "&lt;b&gt;no such audio device&lt;/b&gt;" in backoff and "<b>no such" not in html
    assert "last exit code 1" in _text(backoff)
    assert "Extension 1008" not in _text(backoff) and "not configured in Admin" in _text(backoff)
    # Failed (credentials refused): red, registered "no" in red, the reason, not retried; exit 0 not shown.
    assert "hw-state bad" in failed and ">failed<" in failed and 'hw-state bad">no<' in failed
    assert "REGISTER refused: 403 Forbidden" in failed and "not retried" in _text(failed)
    assert "for 2 h 0 min" in _text(failed) and "last exit code" not in failed
    # Not started yet (a supervisor that has not started): grey, no call.
    assert "hw-state idle" in fresh and ">idle<" in fresh and "Not started yet." in _text(fresh)
    assert re.search(r"<td><span class=\"muted\">–</span></td>", fresh)
    assert "headsets" not in _text(html[html.index('data-board="front-desk"'):html.index("USB headsets")]).lower()
    assert "The headset configuration is not used" not in html


def test_headsets_only_without_hardware_yaml(admin: FlaskClient, engine_api: FakeEngineApi) -> None:
    """EngineApi.hardware with headsets.yaml and no hardware.yaml: the headsets, not "No hardware configured"."""
    engine_api.responses[HW] = {"config": None, "error": None, "boards": [], "modems": [],
                                "headsets": _headsets_status()[:1]}
    code, html = _page(admin)
    assert code == 200 and 'data-headset="1007"' in html
    assert "No hardware configured" not in html and "No boards or modems" not in html
    assert "Configuration:" not in html and "Other" not in _text(html)
    json_view = admin.get("/system/hardware.json").json
    assert json_view is not None and json_view["configured"] is True and 'data-headset="1007"' in json_view["html"]


def test_headsets_error_is_shown(admin: FlaskClient, engine_api: FakeEngineApi, tmp_path: Path) -> None:
    path = tmp_path / "headsets.yaml"
    path.write_text('- {extension: "1007", input_device: Jabra}\n')
    supervisor = HeadsetSupervisor.from_file(path, "127.0.0.1", 5060)
    assert supervisor.error  # the real message of a bad file
    engine_api.responses[HW] = {"config": None, "error": None, "boards": [], "modems": [],
                                "headsets": supervisor.status(), "headsets_error": supervisor.error}
    code, html = _page(admin)
    assert code == 200
    assert "The headset configuration is not used" in html and "headsets[0].password: required" in html
    assert "data/headsets.yaml" in html and 'class="error hw-headsets-error" role="alert"' in html
    assert "No hardware configured" not in html and "USB headsets" not in html  # no headset is running
    assert "headsets error" not in html  # not repeated as an unknown fact


def test_no_hardware_mentions_headsets(admin: FlaskClient, engine_api: FakeEngineApi) -> None:
    engine_api.responses[HW] = {"config": None, "error": None, "boards": []}
    _code, html = _page(admin)
    assert "No hardware configured" in html and "data/headsets.yaml" in html and "data-headset" not in html


def test_duration_text() -> None:
    assert duration_text(0) == "0 s" and duration_text(59.9) == "59 s" and duration_text(61) == "1 min"
    assert duration_text(3600 + 180) == "1 h 3 min" and duration_text(86400 * 3 + 3600 * 4) == "3 d 4 h"
    assert duration_text(-1) == "" and duration_text(None) == "" and duration_text(True) == ""
