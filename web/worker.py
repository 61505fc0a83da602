"""The gunicorn worker of the web UI: gevent greenlets with header and TLS-handshake deadlines.

Why not gthread: a thread is held by every connection from accept to the end of its headers,
so 16 clients that trickle one header line every few seconds (slowloris) or stop half-way
through a TLS ClientHello took every thread and the UI went dark before anyone could log in
(issue 12, finding 5). Here a connection costs a greenlet (a few KiB) until its deadline, and
one worker holds `worker_connections` of them; a login is never queued behind a slow stranger.

Two deadlines, each for the whole phase rather than per read (a client sending one byte a
second would otherwise never time out):
- the TLS handshake (RFC 8446 §4) must finish within HANDSHAKE_TIMEOUT of the accept;
- a request's header block (RFC 9112 §2.2) must arrive within HEADER_TIMEOUT; the same bound
  ends an idle keep-alive connection.
"""
from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import gevent
from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker

HEADER_TIMEOUT = 10.0  # seconds for a request's whole header block
HANDSHAKE_TIMEOUT = 10.0  # seconds for the whole TLS handshake


class HandshakeTimeout(Exception):
    """The TLS client did not finish its handshake in HANDSHAKE_TIMEOUT."""


class _LazyHandshakeContext:
    """The server's SSLContext, but sockets are wrapped without the handshake on accept.

    gevent's StreamServer wraps each accepted socket with `ssl_context.wrap_socket(sock,
    server_side=True)`, whose handshake has no deadline. Deferring it lets the worker run it
    under one (gunicorn's AsyncWorker then finds it done).
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context

    def wrap_socket(self, sock: Any, **kwargs: Any) -> Any:
        kwargs["do_handshake_on_connect"] = False
        return self._context.wrap_socket(sock, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def lazy_handshake_context(_conf: Any, default_factory: Callable[[], ssl.SSLContext]) -> Any:
    """gunicorn's `ssl_context` hook: the default context, handshake deferred to the worker."""
    return _LazyHandshakeContext(default_factory())


class PlateauWorker(GeventWorker):  # type: ignore[misc]
    """gunicorn's gevent worker with the two deadlines above."""

    def timeout_ctx(self) -> Any:
        # AsyncWorker reads each request's headers inside this context; `False` makes the
        # timeout end the `with` quietly, and the worker then closes the connection.
        return gevent.Timeout(HEADER_TIMEOUT, False)

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        if isinstance(client, ssl.SSLSocket):
            client.setblocking(True)
            try:
                with gevent.Timeout(HANDSHAKE_TIMEOUT, HandshakeTimeout):
                    client.do_handshake()
            except (HandshakeTimeout, ssl.SSLError, OSError) as exc:
                self.log.debug("TLS handshake from %s not completed: %s", addr, exc)
                util.close(client)
                return
        super().handle(listener, client, addr)
