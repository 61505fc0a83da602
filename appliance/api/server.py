"""The local control API: HTTP/JSON on the loopback interface, bearer-token auth.

The only door into the running engine (ARCHITECTURE.md). Requests are served by a
ThreadingHTTPServer in its own threads; every engine call goes through
``call_in_loop`` so call control stays single-threaded in the SIP event loop.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import socket
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from appliance.api.facade import ApiError, EngineFacade, JsonValue
from appliance.system.liveness import Heartbeat, PartHealth
from appliance.system.supervisor import run_supervised, thread_health

log = logging.getLogger(__name__)

CallInLoop = Callable[..., Any]
DEFAULT_MAX_BODY = 64 * 1024
# Oversize bodies are read and discarded up to this much so the client, which sends
# its whole body before reading, sees the 413 instead of a connection reset.
_DRAIN_LIMIT = 4 * 1024 * 1024


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Callable[[EngineFacade, dict[str, str], Any], tuple[Callable[..., Any], tuple[Any, ...]]]
    # False for facade methods that are thread-safe and wait on another process (a headset):
    # run in the API thread so the wait never stalls SIP in the engine loop.
    in_loop: bool = True


MAX_NUMBER_DIGITS = 20  # any count, port or id of ours fits in 64 bits (19 digits) plus a sign


class JsonNumberError(ValueError):
    """A JSON number we refuse before converting it."""


def _bounded_int(text: str) -> int:
    # A 5000-digit integer made int() raise ValueError (CPython's 4300-digit limit) outside the
    # JSONDecodeError handler, and the connection closed with no answer (issue 12).
    if len(text.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise JsonNumberError(f"number too long: at most {MAX_NUMBER_DIGITS} digits")
    return int(text)


def _bounded_float(text: str) -> float:
    if len(text) > 2 * MAX_NUMBER_DIGITS:
        raise JsonNumberError(f"number too long: at most {2 * MAX_NUMBER_DIGITS} characters")
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise JsonNumberError(f"number out of range: {text[:24]}")
    return value


def _no_constant(name: str) -> Any:
    raise JsonNumberError(f"{name} is not JSON (RFC 8259 §6)")


def _obj(body: Any, required: dict[str, type], optional: dict[str, type]) -> dict[str, Any]:
    """Check a JSON body is an object with exactly the allowed keys and types."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ApiError(400, "body must be a JSON object")
    for key in body:
        if key not in required and key not in optional:
            raise ApiError(400, f"unknown field {key!r}")
    for key in required:
        if key not in body:
            raise ApiError(400, f"field {key!r} is required")
    for key, value in body.items():
        kind = required.get(key) or optional[key]
        if value is None and key in optional:
            continue
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            raise ApiError(400, f"field {key!r} must be a {kind.__name__}")
        if kind is str and not value:
            raise ApiError(400, f"field {key!r} must not be empty")
    return body


def _originate(f: EngineFacade, _p: dict[str, str], body: Any) -> tuple[Callable[..., Any], tuple]:
    b = _obj(body, {"from": str, "to": str}, {"caller_id": str})
    return f.originate, (b["from"], b["to"], b.get("caller_id"))


def _transfer(f: EngineFacade, p: dict[str, str], body: Any) -> tuple[Callable[..., Any], tuple]:
    b = _obj(body, {"to": str}, {})
    return f.transfer, (p["id"], b["to"])


def _hangup(f: EngineFacade, p: dict[str, str], body: Any) -> tuple[Callable[..., Any], tuple]:
    _obj(body, {}, {})
    return f.hangup, (p["id"],)


def _agent_action(f: EngineFacade, p: dict[str, str], body: Any) -> tuple[Callable[..., Any], tuple]:
    b = _obj(body, {}, {"device": str, "reason": str})
    if p["action"] == "login" and "device" not in b:
        raise ApiError(400, "field 'device' is required to log in")
    return f.agent_action, (p["id"], p["action"], b.get("device"), b.get("reason"))


def _monitor(f: EngineFacade, p: dict[str, str], body: Any) -> tuple[Callable[..., Any], tuple]:
    b = _obj(body, {"device": str, "mode": str}, {})
    return f.monitor, (p["id"], b["device"], b["mode"])


def _interaction(f: EngineFacade, p: dict[str, str], body: Any) -> tuple[Callable[..., Any], tuple]:
    b = _obj(body, {}, {"status": str, "disposition": str, "notes": str})
    if not b:
        raise ApiError(400, "nothing to change: give status, disposition or notes")
    return f.update_interaction, (p["id"], b.get("status"), b.get("disposition"), b.get("notes"))


def _no_body(name: str, *params: str) -> Callable[..., tuple[Callable[..., Any], tuple]]:
    def handler(f: EngineFacade, p: dict[str, str], body: Any) -> tuple[Callable[..., Any], tuple]:
        if body is not None:
            raise ApiError(400, "this request takes no body")
        return getattr(f, name), tuple(p[x] for x in params)

    return handler


def _headset_action(f: EngineFacade, p: dict[str, str], body: Any) -> tuple[Callable[..., Any], tuple]:
    _obj(body, {}, {})
    return f.headset_action, (p["ext"], p["action"])


def _campaign_action(f: EngineFacade, p: dict[str, str], body: Any) -> tuple[Callable[..., Any], tuple]:
    _obj(body, {}, {})
    return f.campaign_action, (p["name"], p["action"])


def _disposition(f: EngineFacade, p: dict[str, str], body: Any) -> tuple[Callable[..., Any], tuple]:
    when = body.get("callback_at") if isinstance(body, dict) else None
    numeric = isinstance(when, (int, float)) and not isinstance(when, bool)
    b = _obj(body, {"code": str}, {"callback_at": float if isinstance(when, float) else int if numeric else str,
                                   "agent": str})
    return f.lead_disposition, (p["id"], b["code"], b.get("callback_at"), b.get("agent"))


def _dnc(f: EngineFacade, _p: dict[str, str], body: Any) -> tuple[Callable[..., Any], tuple]:
    b = _obj(body, {"number": str}, {"note": str, "campaign": str})
    return f.add_dnc, (b["number"], b.get("note"), b.get("campaign"))


def _preview_action(f: EngineFacade, p: dict[str, str], body: Any) -> tuple[Callable[..., Any], tuple]:
    b = _obj(body, {"action": str}, {})
    if b["action"] not in ("dial", "skip"):
        raise ApiError(400, "field 'action' must be 'dial' or 'skip'")
    return f.agent_preview_action, (p["id"], b["action"])


def _route(method: str, path: str, handler: Any, in_loop: bool = True) -> _Route:
    return _Route(method, re.compile("^" + path + "$"), handler, in_loop)


ROUTES: tuple[_Route, ...] = (
    _route("GET", "/v1/status", _no_body("status")),
    _route("GET", "/v1/registrations", _no_body("registrations")),
    _route("GET", "/v1/channels", _no_body("channels")),
    _route("GET", "/v1/bridges", _no_body("bridges")),
    _route("GET", "/v1/calls", _no_body("calls")),
    _route("GET", "/v1/hardware", _no_body("hardware")),
    _route("GET", "/v1/blocked", _no_body("blocked")),
    _route("DELETE", "/v1/blocked/(?P<addr>[^/]+)", _no_body("unblock", "addr")),
    _route("POST", "/v1/originate", _originate),
    _route("POST", "/v1/reload", _no_body("reload")),
    _route("POST", "/v1/channels/(?P<id>[^/]+)/hangup", _hangup),
    _route("POST", "/v1/channels/(?P<id>[^/]+)/transfer", _transfer),
    _route("GET", "/v1/agents", _no_body("agents")),
    _route("POST", "/v1/agents/(?P<id>[^/]+)/(?P<action>login|logout|pause|unpause)", _agent_action),
    _route("GET", "/v1/queues", _no_body("queues")),
    _route("POST", "/v1/agents/(?P<id>[^/]+)/monitor", _monitor),
    _route("GET", "/v1/queues/(?P<name>[^/]+)/kpis", _no_body("queue_kpis", "name")),
    _route("GET", "/v1/interactions/(?P<id>[0-9]+)", _no_body("interaction", "id")),
    _route("POST", "/v1/interactions/(?P<id>[0-9]+)", _interaction),
    _route("GET", "/v1/headsets", _no_body("headsets")),
    _route("GET", "/v1/campaigns", _no_body("campaigns")),
    _route("POST", "/v1/campaigns/(?P<name>[^/]+)/(?P<action>start|pause)", _campaign_action),
    _route("GET", "/v1/agents/(?P<id>[^/]+)/lead", _no_body("agent_lead", "id")),
    _route("GET", "/v1/agents/(?P<id>[^/]+)/preview", _no_body("agent_preview", "id")),
    _route("POST", "/v1/agents/(?P<id>[^/]+)/preview", _preview_action),
    _route("POST", "/v1/leads/(?P<id>[0-9]+)/disposition", _disposition),
    _route("POST", "/v1/dnc", _dnc),
    _route("POST", "/v1/headsets/(?P<ext>[^/]+)/(?P<action>answer|hangup)", _headset_action, in_loop=False),
)


class _HttpServer(ThreadingHTTPServer):
    # Join handler threads on close so stop() leaves no thread behind.
    daemon_threads = False
    block_on_close = True
    api: ControlApiServer

    def service_actions(self) -> None:
        # serve_forever calls this once per poll round, busy or idle: the accept loop's heartbeat
        self.api.beat.beat()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A request thread's death: logged once with its cause and counted (it ends with its
        # connection; the accept loop goes on).
        self.api.handler_deaths.died(f"request from {client_address[0]}: see the traceback in the log")
        log.exception("control API request from %s failed", client_address[0])


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    protocol_version = "HTTP/1.0"  # one request per connection: no idle threads
    timeout = 10.0  # seconds; a stalled client cannot hold a thread for ever
    server_version = "plateau-api"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("api %s: " + format, self.address_string(), *args)

    def _send(self, status: int, payload: JsonValue, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, {"error": message}, headers)

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        # RFC 7235 section 2.1: the auth scheme is case-insensitive.
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(token.strip().encode(), self.server.api.token.encode())

    def _drain(self, length: int) -> None:
        remaining = min(length, _DRAIN_LIMIT)
        try:
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:
            pass  # client gone or timed out: nothing left to tell it

    def _linger(self) -> None:
        """Lingering close for a body of unknown length: answer, stop writing, read to EOF.

        Closing with unread data would make the kernel reset the connection and the
        client, still sending, would see a broken pipe instead of our answer.
        """
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(2.0)
            remaining = _DRAIN_LIMIT
            while remaining > 0:
                chunk = self.connection.recv(65536)
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:
            pass  # client gone or timed out: nothing left to tell it

    def _read_body(self) -> tuple[bool, Any]:
        """Return (ok, parsed JSON or None); on failure the error is already sent."""
        if self.headers.get("Transfer-Encoding"):
            self._error(411, "chunked bodies are not supported; send Content-Length")
            self._linger()
            return False, None
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            return True, None
        try:
            length = int(raw_length)
            if length < 0:
                raise ValueError(raw_length)
        except ValueError:
            self._error(400, f"invalid Content-Length {raw_length!r}")
            return False, None
        if length > self.server.api.max_body:
            self._error(413, f"body larger than {self.server.api.max_body} bytes")
            self._drain(length)
            return False, None
        if length == 0:
            return True, None
        data = self.rfile.read(length)
        if len(data) != length:
            self._error(400, "body shorter than Content-Length")
            return False, None
        try:
            return True, json.loads(data.decode("utf-8"), parse_int=_bounded_int, parse_float=_bounded_float,
                                    parse_constant=_no_constant)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self._error(400, f"malformed JSON: {exc}")
            return False, None
        except JsonNumberError as exc:
            self._error(400, str(exc))
            return False, None

    def _dispatch(self) -> None:
        api = self.server.api
        if not self._authorized():
            self._error(401, "missing or invalid bearer token",
                        {"WWW-Authenticate": 'Bearer realm="plateau"'})
            return
        path = urllib.parse.urlsplit(self.path).path
        allowed: list[str] = []
        for route in ROUTES:
            match = route.pattern.match(path)
            if not match:
                continue
            if route.method != self.command:
                allowed.append(route.method)
                continue
            ok, body = self._read_body()
            if not ok:
                return
            params = {k: urllib.parse.unquote(v) for k, v in match.groupdict().items()}
            try:
                fn, args = route.handler(api.facade, params, body)
                result = api.call_in_loop(fn, *args) if route.in_loop else fn(*args)
            except ApiError as exc:
                self._error(exc.status, exc.message)
                return
            except Exception:  # engine bug: answer 500, keep serving, log the traceback
                log.exception("control API %s %s failed", self.command, path)
                self._error(500, "internal error")
                return
            self._send(200, result)
            return
        if allowed:
            self._error(405, f"method {self.command} not allowed",
                        {"Allow": ", ".join(sorted(set(allowed)))})
        else:
            self._error(404, f"no such resource {path}")

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = _dispatch


class ControlApiServer:
    """HTTP/JSON control API bound to ``host:port`` (port 0 picks a free port)."""

    def __init__(
        self,
        host: str,
        port: int,
        token: str,
        facade: EngineFacade,
        call_in_loop: CallInLoop,
        *,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        if not token:
            raise ValueError("control API token must not be empty")
        self.host = host
        self.token = token
        self.facade = facade
        self.call_in_loop = call_in_loop
        self.max_body = max_body
        self._requested_port = port
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.beat = Heartbeat()  # the accept loop (serve_forever)
        self.handler_deaths = Heartbeat()  # request threads that died with an exception

    @property
    def port(self) -> int:
        """The bound port (valid after start())."""
        if self._httpd is None:
            raise RuntimeError("control API server is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8089``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Bind and serve in a background thread."""
        if self._httpd is not None:
            raise RuntimeError("control API server already started")
        server_cls: type[_HttpServer] = _HttpServer
        if ":" in self.host:
            server_cls = type("_HttpServer6", (_HttpServer,), {"address_family": socket.AF_INET6})
        httpd = server_cls((self.host, self._requested_port), _Handler)
        httpd.api = self
        self._httpd = httpd
        self._stopping = False
        self._thread = threading.Thread(
            target=run_supervised, args=("control-api", self.beat, self._serve, lambda: self._stopping),
            name="control-api", daemon=True,
        )
        self._thread.start()
        log.info("control API listening on %s", self.url)

    def _serve(self) -> None:
        assert self._httpd is not None
        self._httpd.serve_forever(poll_interval=0.05)

    def health(self) -> list[PartHealth]:
        """The accept loop's record, and the request threads' deaths (for the supervisor)."""
        handlers = self.handler_deaths
        return [thread_health("control-api", self._thread, self.beat),
                PartHealth("control-api-requests", True, self.beat.last, handlers.deaths, handlers.deaths,
                           handlers.last_error)]

    def stop(self) -> None:
        """Stop serving, close the socket and join the server's threads."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping = True
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join()
        self._httpd = None
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
