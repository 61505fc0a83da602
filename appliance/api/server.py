"""The local control API: HTTP/JSON on the loopback interface, bearer-token auth.

The only door into the running engine (docs/ARCHITECTURE.md, "The control API"). The Flask app
(appliance/api/app.py) is served by Werkzeug's threaded WSGI server, one thread per request,
in the engine process; its accept loop runs under the engine's supervisor (`run_supervised`):
a death is counted and the loop starts again on the same socket.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
from typing import Any, Self

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from appliance.api.app import DEFAULT_MAX_BODY, ApiContext, CallInLoop, create_app
from appliance.api.facade import EngineFacade
from appliance.system.liveness import Heartbeat, PartHealth
from appliance.system.supervisor import run_supervised, thread_health

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_MAX_BODY", "ControlApiServer"]

_LISTEN_BACKLOG = 128


class _Handler(WSGIRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: no idle threads
    timeout = 10.0  # seconds; a stalled client cannot hold a thread for ever

    def version_string(self) -> str:
        return "plateau-api"

    def send_response(self, code: int, message: str | None = None) -> None:
        # http.server's reason phrases ("Not Found"), as the API always sent, not Werkzeug's capitals
        super().send_response(code)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Werkzeug would print every request to stderr (and decode its path to do so, on every
        # request); the engine's log has them at debug level.
        if log.isEnabledFor(logging.DEBUG):
            log.debug("api %s: %s %s %s", self.address_string(), self.requestline, code, size)

    def log(self, type: str, message: str, *args: Any) -> None:
        log.debug("api %s: " + message, self.address_string(), *args)


class _WsgiServer(ThreadedWSGIServer):
    # Join request threads on close so stop() leaves no thread behind.
    daemon_threads = False
    block_on_close = True
    api: ControlApiServer

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        # Werkzeug's serve_forever closes the socket when the loop ends; a supervised restart
        # must find it open, with the connections waiting in its backlog.
        socketserver.BaseServer.serve_forever(self, poll_interval)

    def service_actions(self) -> None:
        # serve_forever calls this once per poll round, busy or idle: the accept loop's heartbeat
        super().service_actions()
        self.api.beat.beat()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A request thread's death outside the app: logged once with its cause and counted (it ends
        # with its connection; the accept loop goes on).
        self.api.handler_deaths.died(f"request from {client_address[0]}: see the traceback in the log")
        log.exception("control API request from %s failed", client_address[0])

    def log(self, type: str, message: str, *args: Any) -> None:
        # Werkzeug logs here an exception that escaped the app, which answers its own errors:
        # a bug of ours, counted as a request's death like one that escapes the handler.
        if type == "error":
            self.api.handler_deaths.died("request died in the WSGI server: see the traceback in the log")
        log.error("control API: " + message, *args)


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
        self._httpd: _WsgiServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.beat = Heartbeat()  # the accept loop (serve_forever)
        self.handler_deaths = Heartbeat()  # request threads that died with an exception
        self.app = create_app(ApiContext(token, facade, call_in_loop, max_body, self.handler_deaths))

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

    def _listen(self) -> socket.socket:
        # Bound here rather than by Werkzeug, which exits the process when a bind fails: a busy
        # port or a host without IPv6 is an OSError for the engine to report.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._requested_port))
            sock.listen(_LISTEN_BACKLOG)
        except BaseException:
            sock.close()
            raise
        return sock

    def start(self) -> None:
        """Bind and serve in a background thread."""
        if self._httpd is not None:
            raise RuntimeError("control API server already started")
        sock = self._listen()
        try:
            httpd = _WsgiServer(self.host, sock.getsockname()[1], self.app, _Handler, fd=sock.fileno())
        finally:
            sock.close()  # Werkzeug serves a duplicate of it
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

    def serve_connection(self, connection: socket.socket, peer: tuple[str, int]) -> None:
        """Serve one accepted connection in the calling thread (the fuzz target drives it so)."""
        if self._httpd is None:
            raise RuntimeError("control API server is not started")
        self._httpd.finish_request(connection, peer)

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
