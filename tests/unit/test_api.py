"""Control API: auth, every route, error mapping, limits and concurrency.

A fake engine facade stands in for the engine: the API layer is under test here.
Calls reach it through a one-thread executor playing the SIP event loop, as in the
engine.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import pathlib
import stat
import threading
from typing import Any

import pytest

from appliance.api import (
    ApiError,
    ApiUnavailable,
    ControlApiClient,
    ControlApiServer,
    new_token,
    read_api_file,
    write_api_file,
)
from appliance.schema.errors import FieldError, RecordInvalid

TOKEN = "test-token-" + "x" * 20


class FakeEngine:
    """Minimal engine state behind the EngineFacade protocol."""

    def __init__(self) -> None:
        self.loop_thread: threading.Thread | None = None
        self.channels_ = {"SIP/1001-1": {"id": "SIP/1001-1", "state": "up"}}
        self.blocked_ = {"198.51.100.7": {"address": "198.51.100.7", "failures": 5}}
        self.originated: list[tuple[str, str, str | None]] = []
        self.transfers: list[tuple[str, str]] = []
        self.calls_seen = 0

    def _in_loop(self) -> None:
        # Every facade call must run in the engine loop thread (call_in_loop).
        if threading.current_thread() is not self.loop_thread:
            raise RuntimeError("facade called outside the event loop thread")
        self.calls_seen += 1

    def status(self) -> dict[str, Any]:
        self._in_loop()
        return {"version": "0.1.0", "calls": len(self.channels_)}

    def registrations(self) -> list[dict[str, Any]]:
        self._in_loop()
        return [{"aor": "sip:1001@pbx", "contact": "sip:1001@192.0.2.1"}]

    def channels(self) -> list[dict[str, Any]]:
        self._in_loop()
        return list(self.channels_.values())

    def bridges(self) -> list[dict[str, Any]]:
        self._in_loop()
        return [{"id": "b1", "channels": list(self.channels_)}]

    def calls(self) -> list[dict[str, Any]]:
        self._in_loop()
        return [{"call_id": "c1"}]

    def blocked(self) -> list[dict[str, Any]]:
        self._in_loop()
        return list(self.blocked_.values())

    def unblock(self, address: str) -> dict[str, Any]:
        self._in_loop()
        if self.blocked_.pop(address, None) is None:
            raise ApiError(404, f"{address} is not blocked")
        return {"unblocked": address}

    def reload(self) -> dict[str, Any]:
        self._in_loop()
        self.reloads = getattr(self, "reloads", 0) + 1
        return {"reloaded": True}

    def originate(self, from_ext: str, to: str, caller_id: str | None) -> dict[str, Any]:
        self._in_loop()
        if from_ext == "boom":
            raise ValueError("engine bug")
        self.originated.append((from_ext, to, caller_id))
        return {"channel": f"SIP/{from_ext}-2"}

    def hangup(self, channel_id: str) -> dict[str, Any]:
        self._in_loop()
        if self.channels_.pop(channel_id, None) is None:
            raise ApiError(404, f"no channel {channel_id}")
        return {"hungup": channel_id}

    def transfer(self, channel_id: str, to: str) -> dict[str, Any]:
        self._in_loop()
        if channel_id not in self.channels_:
            raise ApiError(404, f"no channel {channel_id}")
        self.transfers.append((channel_id, to))
        return {"transferred": channel_id, "to": to}


@pytest.fixture
def engine():
    fake = FakeEngine()
    loop = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sip-loop")
    fake.loop_thread = loop.submit(threading.current_thread).result()
    yield fake, (lambda fn, *args: loop.submit(fn, *args).result())
    loop.shutdown(wait=True)


@pytest.fixture
def server(engine):
    fake, call_in_loop = engine
    srv = ControlApiServer("127.0.0.1", 0, TOKEN, fake, call_in_loop, max_body=4096)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def client(server: ControlApiServer) -> ControlApiClient:
    return ControlApiClient(server.url, TOKEN, timeout=5)


def raw(server: ControlApiServer, method: str, path: str, body: bytes | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        hdrs = {"Authorization": f"Bearer {TOKEN}", **(headers or {})}
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, dict(resp.getheaders()), json.loads(data) if data else None
    finally:
        conn.close()


def test_every_route(client: ControlApiClient, engine) -> None:
    fake, _ = engine
    assert client.status() == {"version": "0.1.0", "calls": 1}
    assert client.registrations()[0]["aor"] == "sip:1001@pbx"
    assert client.channels() == [{"id": "SIP/1001-1", "state": "up"}]
    assert client.bridges() == [{"id": "b1", "channels": ["SIP/1001-1"]}]
    assert client.calls() == [{"call_id": "c1"}]
    assert client.blocked()[0]["address"] == "198.51.100.7"
    assert client.originate("1001", "0612345678") == {"channel": "SIP/1001-2"}
    client.originate("1002", "1003", caller_id="+33100000000")
    assert fake.originated == [("1001", "0612345678", None), ("1002", "1003", "+33100000000")]
    # Ids with '/' survive percent-encoding in the path.
    assert client.transfer("SIP/1001-1", "1004") == {"transferred": "SIP/1001-1", "to": "1004"}
    assert client.hangup("SIP/1001-1") == {"hungup": "SIP/1001-1"}
    assert client.unblock("198.51.100.7") == {"unblocked": "198.51.100.7"}
    assert fake.calls_seen == 11


def test_facade_errors_keep_status_and_message(client: ControlApiClient) -> None:
    with pytest.raises(ApiError) as info:
        client.hangup("SIP/nope")
    assert (info.value.status, info.value.message) == (404, "no channel SIP/nope")
    with pytest.raises(ApiError) as info:
        client.unblock("2001:db8::1")
    assert (info.value.status, info.value.message) == (404, "2001:db8::1 is not blocked")
    with pytest.raises(ApiError) as info:
        client.transfer("SIP/nope", "1001")
    assert info.value.status == 404


def test_a_refused_record_carries_its_field_errors_as_data(client: ControlApiClient, server: ControlApiServer,
                                                          engine) -> None:  # type: ignore[no-untyped-def]
    fake, _ = engine
    refusal = RecordInvalid([FieldError(("interaction", "status"), "'x' is not one of open, closed"),
                             FieldError(("interaction", "notes"), "contains a NUL character")])

    def unblock(address: str) -> dict[str, Any]:
        raise ApiError.refused(refusal)

    fake.unblock = unblock
    with pytest.raises(ApiError) as info:
        client.unblock("198.51.100.7")
    assert (info.value.status, info.value.message) == (400, str(refusal))
    assert info.value.errors == refusal.errors
    status, _headers, body = raw(server, "DELETE", "/v1/blocked/198.51.100.7")
    assert status == 400 and body["errors"][1] == {"loc": ["interaction", "notes"], "msg": "contains a NUL character"}


def test_engine_bug_is_500_and_server_keeps_serving(client: ControlApiClient) -> None:
    with pytest.raises(ApiError) as info:
        client.originate("boom", "1001")
    assert (info.value.status, info.value.message) == (500, "internal error")
    assert client.status()["version"] == "0.1.0"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"to": "1001"}, "field 'from' is required"),
        ({"from": "1001"}, "field 'to' is required"),
        ({"from": 1001, "to": "1002"}, "field 'from' must be a str"),
        ({"from": "1001", "to": ""}, "field 'to' must not be empty"),
        ({"from": "1001", "to": "1002", "callerid": "x"}, "unknown field 'callerid'"),
        (["1001", "1002"], "body must be a JSON object"),
    ],
)
def test_originate_body_validation(client: ControlApiClient, body: Any, message: str) -> None:
    with pytest.raises(ApiError) as info:
        client.request("POST", "/v1/originate", body)
    assert (info.value.status, info.value.message) == (400, message)


def test_reload_reaches_the_engine_loop(client: ControlApiClient, engine: Any) -> None:
    assert client.reload() == {"reloaded": True}
    assert engine[0].reloads == 1


def test_transfer_requires_to(client: ControlApiClient) -> None:
    with pytest.raises(ApiError) as info:
        client.request("POST", "/v1/channels/SIP%2F1001-1/transfer", {})
    assert (info.value.status, info.value.message) == (400, "field 'to' is required")


def test_auth_required_everywhere(server: ControlApiServer) -> None:
    for method, path in [("GET", "/v1/status"), ("POST", "/v1/originate"), ("GET", "/nope")]:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        try:
            conn.request(method, path)
            resp = conn.getresponse()
            assert resp.status == 401
            assert resp.getheader("WWW-Authenticate") == 'Bearer realm="plateau"'
            assert json.loads(resp.read()) == {"error": "missing or invalid bearer token"}
        finally:
            conn.close()
    for header in [f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN, "Bearer "]:
        status, _, _ = raw(server, "GET", "/v1/status", headers={"Authorization": header})
        assert status == 401, header
    status, _, _ = raw(server, "GET", "/v1/status", headers={"Authorization": f"bearer {TOKEN}"})
    assert status == 200
    with pytest.raises(ApiError) as info:
        ControlApiClient(server.url, "wrong").status()
    assert info.value.status == 401


def test_unknown_route_and_wrong_method(server: ControlApiServer) -> None:
    status, _, body = raw(server, "GET", "/v1/nothing")
    assert (status, body) == (404, {"error": "no such resource /v1/nothing"})
    status, _, _ = raw(server, "GET", "/v1/status/")
    assert status == 404
    status, headers, body = raw(server, "POST", "/v1/status", b"{}")
    assert (status, headers["Allow"], body) == (405, "GET", {"error": "method POST not allowed"})
    status, headers, _ = raw(server, "GET", "/v1/channels/x/hangup")
    assert (status, headers["Allow"]) == (405, "POST")
    status, _, _ = raw(server, "PUT", "/v1/blocked/1.2.3.4", b"{}")
    assert status == 405


def test_malformed_bodies(server: ControlApiServer) -> None:
    status, _, body = raw(server, "POST", "/v1/originate", b'{"from": "1001", "to":')
    assert status == 400 and body["error"].startswith("malformed JSON")
    status, _, body = raw(server, "POST", "/v1/originate", b"\xff\xfe")
    assert status == 400 and body["error"].startswith("malformed JSON")
    status, _, body = raw(server, "GET", "/v1/status", b'{"x": 1}')
    assert (status, body) == (400, {"error": "this request takes no body"})
    status, _, body = raw(server, "POST", "/v1/originate", b"{}",
                          headers={"Content-Length": "-5"})
    assert status == 400


@pytest.mark.parametrize("number", ["9" * 5000, "-" + "9" * 5000, "1" + "0" * 400 + ".5", "1e999", "NaN",
                                    "-Infinity"])
def test_huge_or_non_finite_json_numbers_are_a_400(engine, number: str) -> None:  # type: ignore[no-untyped-def]
    # 5000 digits made int() raise outside the JSON error handler: the connection closed, no reply.
    fake, call_in_loop = engine
    srv = ControlApiServer("127.0.0.1", 0, TOKEN, fake, call_in_loop, max_body=65536)
    srv.start()
    try:
        body = ('{"from": "1001", "to": "1002", "caller_id": ' + number + '}').encode()
        status, _h, answer = raw(srv, "POST", "/v1/originate", body, {"Content-Type": "application/json"})
    finally:
        srv.stop()
    assert status == 400 and answer["error"], answer


def test_oversize_body_is_413(server: ControlApiServer, engine) -> None:
    fake, _ = engine
    big = json.dumps({"from": "1001", "to": "1" * 200_000}).encode()
    status, _, body = raw(server, "POST", "/v1/originate", big)
    assert (status, body) == (413, {"error": "body larger than 4096 bytes"})
    assert fake.originated == []


def test_chunked_body_is_411(server: ControlApiServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("POST", "/v1/originate", body=iter([b'{"from": "1001", "to": "1002"}']),
                     headers={"Authorization": f"Bearer {TOKEN}"}, encode_chunked=True)
        resp = conn.getresponse()
        assert resp.status == 411
        resp.read()
    finally:
        conn.close()


def test_concurrent_clients(server: ControlApiServer, engine) -> None:
    fake, _ = engine
    client = ControlApiClient(server.url, TOKEN, timeout=10)

    def work(n: int) -> list[str]:
        out = []
        for i in range(15):
            out.append(client.originate(str(1000 + n), str(i))["channel"])
            assert client.status()["version"] == "0.1.0"
        return out

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(8)))
    assert len(fake.originated) == 120
    assert results[3] == ["SIP/1003-2"] * 15


def test_stop_releases_port_and_threads(engine) -> None:
    fake, call_in_loop = engine
    before = set(threading.enumerate())
    srv = ControlApiServer("127.0.0.1", 0, TOKEN, fake, call_in_loop)
    srv.start()
    client = ControlApiClient(srv.url, TOKEN, timeout=5)
    assert client.status()
    srv.stop()
    assert set(threading.enumerate()) <= before
    with pytest.raises(ApiUnavailable, match="unreachable"):
        client.status()
    srv.stop()  # idempotent


def test_ipv6_loopback(engine) -> None:
    fake, call_in_loop = engine
    try:
        srv = ControlApiServer("::1", 0, TOKEN, fake, call_in_loop)
        srv.start()
    except OSError as exc:  # host without IPv6 loopback: the check below cannot run
        pytest.fail(f"IPv6 loopback unavailable on this host: {exc}")
    try:
        assert srv.url.startswith("http://[::1]:")
        assert ControlApiClient(srv.url, TOKEN, timeout=5).status()["version"] == "0.1.0"
    finally:
        srv.stop()


def test_empty_token_refused(engine) -> None:
    fake, call_in_loop = engine
    with pytest.raises(ValueError):
        ControlApiServer("127.0.0.1", 0, "", fake, call_in_loop)


def test_api_file_round_trip(tmp_path: pathlib.Path, server: ControlApiServer) -> None:
    token = new_token()
    assert len(token) >= 40 and token != new_token()
    old = os.umask(0)
    try:
        path = write_api_file(tmp_path / "data", server.url, TOKEN)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_api_file(tmp_path / "data").url == server.url
    assert list((tmp_path / "data").iterdir()) == [path]  # no temp file left
    client = ControlApiClient.from_data_dir(tmp_path / "data")
    assert client.status()["version"] == "0.1.0"
    path.write_text('{"url": 5}')
    with pytest.raises(ValueError, match="expected"):
        read_api_file(tmp_path / "data")


def test_every_bad_field_is_named_at_once(client: ControlApiClient, engine) -> None:
    fake, _ = engine
    with pytest.raises(ApiError) as info:
        client.request("POST", "/v1/originate", {"from": 1001, "to": "", "callerid": "x"})
    assert (info.value.status, info.value.message) == (
        400, "unknown field 'callerid'; field 'from' must be a str; field 'to' must not be empty")
    with pytest.raises(ApiError) as info:
        client.request("POST", "/v1/originate", {"caller_id": None})
    assert info.value.message == "field 'from' is required; field 'to' is required"
    assert fake.originated == []


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"a":' * 50_000])
def test_deeply_nested_json_is_a_400(engine, body: bytes) -> None:  # type: ignore[no-untyped-def]
    # json.loads raised RecursionError outside the JSON error handler: no answer, a dead request.
    fake, call_in_loop = engine
    srv = ControlApiServer("127.0.0.1", 0, TOKEN, fake, call_in_loop, max_body=len(body))
    srv.start()
    try:
        status, _h, answer = raw(srv, "POST", "/v1/originate", body)
        assert srv.handler_deaths.deaths == 0
    finally:
        srv.stop()
    assert (status, answer) == (400, {"error": "malformed JSON: nested too deeply"})


def test_head_and_options_are_refused_as_json(server: ControlApiServer) -> None:
    status, headers, _ = raw(server, "HEAD", "/v1/status")
    assert (status, headers["Allow"]) == (405, "GET")
    status, headers, body = raw(server, "OPTIONS", "/v1/agents/2001/preview")
    assert (status, headers["Allow"], body) == (405, "GET, POST", {"error": "method OPTIONS not allowed"})
    status, _, body = raw(server, "HEAD", "/v1/nothing")
    assert status == 404


def test_answers_are_json_never_cached(server: ControlApiServer) -> None:
    status, headers, body = raw(server, "GET", "/v1/status")
    assert status == 200 and body == {"version": "0.1.0", "calls": 1}
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert headers["Cache-Control"] == "no-store"
    assert headers["Server"] == "plateau-api"


def test_openapi_document_is_valid_and_describes_the_bodies(server: ControlApiServer) -> None:
    from openapi_schema_validator import OAS31Validator
    from openapi_spec_validator import validate

    doc = ControlApiClient(server.url, TOKEN, timeout=5).openapi()
    validate(doc)
    schemas = doc["components"]["schemas"]
    originate = doc["paths"]["/v1/originate"]["post"]
    assert originate["summary"].startswith("Ring extension")
    ref = originate["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body_schema = {**schemas[ref.rsplit("/", 1)[1]], "components": doc["components"]}
    # The document's schema and the server agree on what a good and a bad body are.
    good, bad = {"from": "1001", "to": "1002"}, {"from": "1001", "to": "1002", "callerid": "x"}
    assert OAS31Validator(body_schema).is_valid(good) and not OAS31Validator(body_schema).is_valid(bad)
    assert raw(server, "POST", "/v1/originate", json.dumps(good).encode())[0] == 200
    assert raw(server, "POST", "/v1/originate", json.dumps(bad).encode())[0] == 400
    params = doc["paths"]["/v1/agents/{id}/{action}"]["post"]["parameters"]
    assert params[1]["schema"]["enum"] == ["login", "logout", "pause", "unpause"]
