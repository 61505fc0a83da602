"""SIP over TCP for sippy (RFC 3261 §18), as a sippy ``Network_server``.

sippy ships UDP and WSS servers only.  ``Tcp_server`` offers the same interface as
``Udp_server`` (``transport``, ``send_to``, ``getSIPaddr``, ``shutdown``/``join``,
incoming messages to ``data_callback(data, Remote_address, server, rtime)`` through
``ED2.callFromThread``) on top of one selector thread that owns the listening socket
and every connection:

* framing by the blank line and Content-Length (RFC 3261 §18.3), a missing
  Content-Length is answered 400 and the connection closed (framing is lost);
  a message above ``max_message_size`` is answered 513 (§21.5.11) and closed;
* CRLFs between messages are skipped (§7.5); a double-CRLF keep-alive ping is
  answered with a single CRLF pong (RFC 5626 §4.4.1);
* a response goes back on the connection its request arrived on (§18.2.2), found
  by the top Via branch, else on the connection from the target address, else a new
  connection is opened (§18.2.2 fallback, and requests to new targets);
* requests to an address that has a connection open to us (a phone that registered
  over TCP) reuse that connection (RFC 5626 style flow reuse, needed behind NAT);
* writes are queued per connection, so order is kept on each connection and a slow
  peer never blocks the ED2 loop or other peers; idle connections are closed.
"""

from __future__ import annotations

import errno
import logging
import re
import selectors
import socket
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from sippy.Core.EventDispatcher import ED2
from sippy.Network_server import Network_server, Network_server_opts, Remote_address
from sippy.Time.MonoTime import MonoTime

from appliance.sip.errors import MAX_MESSAGE_SIZE, build_error_response
from appliance.sip.malformed import MalformedLog
from appliance.sip.overload import OverloadGate

from appliance.system.liveness import Heartbeat, PartHealth
from appliance.system.supervisor import run_supervised, thread_health

log = logging.getLogger(__name__)

__all__ = [
    "FrameError",
    "KeepAlivePing",
    "SipFrame",
    "StreamFramer",
    "Tcp_server",
    "Tcp_server_opts",
]


# --------------------------------------------------------------------------- framing


@dataclass(frozen=True)
class SipFrame:
    """One complete SIP message cut out of the stream."""

    data: bytes


@dataclass(frozen=True)
class KeepAlivePing:
    """A CRLFCRLF keep-alive between messages (RFC 5626 §4.4.1); answer with CRLF."""


@dataclass(frozen=True)
class FrameError:
    """The stream cannot be framed any more; reply ``code`` and close."""

    code: int
    reason: str
    head: bytes


_CL_RE = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\S*)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)
_BRANCH_RE = re.compile(
    rb"^(?:via|v)[ \t]*:[^\r\n]*?;[ \t]*branch[ \t]*=[ \t]*([^;,\s]+)", re.IGNORECASE | re.MULTILINE
)


def top_via_branch(data: bytes) -> bytes | None:
    """Branch parameter of the first Via header in ``data`` (header block only)."""
    head = data.split(b"\r\n\r\n", 1)[0]
    m = _BRANCH_RE.search(head)
    return m.group(1) if m else None


class StreamFramer:
    """Cut a TCP byte stream into SIP messages (RFC 3261 §18.3)."""

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self.max_size = max_size
        self.failed = False
        self._buf = bytearray()
        self._scan = 0  # where to resume looking for the end of the header block

    def feed(self, chunk: bytes) -> list[SipFrame | KeepAlivePing | FrameError]:
        """Add received bytes; return the events they complete, in stream order."""
        if self.failed:
            return []
        buf = self._buf
        buf += chunk
        out: list[SipFrame | KeepAlivePing | FrameError] = []
        while buf:
            if buf[:1] in (b"\r", b"\n"):
                if buf.startswith(b"\r\n\r\n"):
                    out.append(KeepAlivePing())
                    del buf[:4]
                    continue
                if b"\r\n\r\n".startswith(bytes(buf[:4])):
                    break  # maybe the first half of a ping: wait
                del buf[:2 if buf.startswith(b"\r\n") else 1]
                continue
            end = buf.find(b"\r\n\r\n", max(0, self._scan - 3))
            if end < 0:
                self._scan = len(buf)
                if len(buf) > self.max_size:
                    out.append(self._fail(513, "Message Too Large", bytes(buf)))
                break
            head = bytes(buf[:end])
            lengths = {m.group(1) for m in _CL_RE.finditer(head)}
            if not lengths:
                out.append(self._fail(400, "Missing Content-Length", head))
                break
            if len(lengths) > 1 or not next(iter(lengths)).isdigit():
                out.append(self._fail(400, "Bad Content-Length", head))
                break
            total = end + 4 + int(next(iter(lengths)))
            if total > self.max_size:
                out.append(self._fail(513, "Message Too Large", head))
                break
            if len(buf) < total:
                self._scan = end  # header end known; just wait for the body
                break
            out.append(SipFrame(bytes(buf[:total])))
            del buf[:total]
            self._scan = 0
        return out

    def _fail(self, code: int, reason: str, head: bytes) -> FrameError:
        self.failed = True
        self._buf.clear()
        return FrameError(code, reason, head)


# --------------------------------------------------------------------------- server


class Tcp_server_opts(Network_server_opts):
    """Options for ``Tcp_server`` (sippy style: positional ``laddress, data_callback``)."""

    family: int = socket.AF_INET
    idle_timeout: float = 900.0
    connect_timeout: float = 5.0
    max_message_size: int = MAX_MESSAGE_SIZE
    max_connections: int = 4096
    max_outbuf: int = 4 * 1024 * 1024
    #: Address written into Via/Contact when listening on a wildcard address.
    advertised: tuple[str, int] | None = None
    #: ``accept_filter(ip) -> bool``; False refuses the connection (e.g. a blocked scanner).
    accept_filter: Callable[[str], bool] | None = None
    #: Called in the ED2 loop with the peer (host, port) when a connection closes.
    on_close: Callable[[tuple[str, int]], None] | None = None
    #: Where framing errors are counted and logged (rate-limited); None: plain log lines.
    malformed: MalformedLog | None = None
    #: Early shedding of new INVITEs under overload (``overload.OverloadGate``), or None.
    gate: OverloadGate | None = None

    #: The options of ours on top of sippy's Network_server_opts (copied by ``o=``).
    OPTIONS = ("family", "idle_timeout", "connect_timeout", "max_message_size",
               "max_connections", "max_outbuf", "advertised", "accept_filter", "on_close",
               "malformed", "gate")

    def __init__(self, *args, family: int | None = None, o: Tcp_server_opts | None = None):
        super().__init__(*args, o=o)
        if o is not None:
            for name in self.OPTIONS:
                setattr(self, name, getattr(o, name))
            return
        laddress: tuple | None = self.laddress  # type: ignore[has-type]
        if laddress is not None and str(laddress[0]).startswith("["):
            family = socket.AF_INET6
            self.laddress = (laddress[0][1:-1], laddress[1])
        self.family = family if family is not None else socket.AF_INET

    def update(self, **opts: object) -> None:
        """Set options of ours by name; TypeError for a name that is not one (a typo in a caller)."""
        for name in opts:
            if name not in self.OPTIONS:
                raise TypeError(f"unknown Tcp_server_opts field {name!r}")
        for name, value in opts.items():
            setattr(self, name, value)

    def isWildCard(self) -> bool:
        # Always False: SipTransactionManager then sends replies through this very
        # server instead of looking for a more specific UDP one (local4remote).
        return False


class _Conn:
    __slots__ = ("closing", "connecting", "drain_until", "framer", "last", "out", "peer", "sock",
                 "started")

    def __init__(self, sock: socket.socket, peer: tuple[str, int], max_size: int,
                 connecting: bool) -> None:
        self.sock = sock
        self.peer = peer
        self.framer = StreamFramer(max_size)
        self.out = bytearray()
        self.last = self.started = time.monotonic()
        self.connecting = connecting
        self.closing = False  # close once ``out`` is flushed
        self.drain_until: float | None = None  # half-closed, discarding input until then


class Tcp_server(Network_server):
    """SIP over TCP server/client endpoint implementing sippy's ``Network_server``."""

    transport = "tcp"

    def __init__(self, global_config: dict, uopts: Tcp_server_opts) -> None:
        if not isinstance(uopts, Tcp_server_opts):
            raise TypeError("Tcp_server needs Tcp_server_opts")
        super().__init__(uopts)
        o: Tcp_server_opts = self.uopts  # type: ignore[assignment]
        self._lsock = socket.socket(o.family, socket.SOCK_STREAM)
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if o.family == socket.AF_INET6:
            self._lsock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        self._lsock.bind((o.laddress[0], int(o.laddress[1])))
        self._lsock.listen(256)
        self._lsock.setblocking(False)
        if int(o.laddress[1]) == 0:
            o.laddress = (o.laddress[0], self._lsock.getsockname()[1])
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._lsock, selectors.EVENT_READ, "listen")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._cmds: deque[tuple[bytes, tuple[str, int]]] = deque()
        self._conns: dict[tuple[str, int], _Conn] = {}
        self._branches: OrderedDict[bytes, tuple[str, int]] = OrderedDict()
        self._closing = False
        self.beat = Heartbeat()
        self._serving: _Conn | None = None  # the connection being served (closed if it kills the loop)
        self._thread: threading.Thread | None = threading.Thread(
            target=self._run, name="sip-tcp", daemon=True)
        self._thread.start()

    # -- sippy Network_server interface ------------------------------------------

    def getSIPaddr(self) -> tuple[tuple[str, int], str]:
        host, port = self.uopts.advertised or self.uopts.laddress
        if self.uopts.family == socket.AF_INET6 and not str(host).startswith("["):
            host = f"[{host}]"
        return ((host, port), self.transport)

    def send_to(self, data: bytes | str, address: tuple, delayed: bool = False) -> None:
        """Queue ``data`` for ``(host, port)``; thread-safe, never blocks."""
        if not isinstance(address, tuple):
            raise TypeError(f"Invalid address, not a tuple: {address!r}")
        if isinstance(data, str):
            data = data.encode("utf-8")
        self._cmds.append((data, (str(address[0]), int(address[1]))))
        self._wake()

    def shutdown(self) -> None:
        self._closing = True
        self._wake()
        self.join()
        self.uopts.data_callback = None

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    # -- introspection ------------------------------------------------------------

    def connections(self) -> list[tuple[str, int]]:
        """Peers with an open connection (a snapshot; for diagnostics and tests)."""
        return list(self._conns)

    def has_connection(self, address: tuple) -> bool:
        """True if a connection to/from ``(host, port)`` is open (e.g. a TCP binding's flow)."""
        return self._key(address) in self._conns

    # -- I/O thread ---------------------------------------------------------------

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # already awake (pipe full) or shutting down

    def _run(self) -> None:
        try:
            # A death in the loop (a message that trips a parser) restarts it on the same
            # listening socket; the connection being served when it died is closed.
            run_supervised("sip-tcp", self.beat, self._loop, lambda: self._closing)
        finally:
            for conn in list(self._conns.values()):
                self._close(conn, notify=False)
            for s in (self._lsock, self._wake_r, self._wake_w):
                s.close()
            self._sel.close()

    def _loop(self) -> None:
        next_sweep = time.monotonic() + 1.0
        culprit, self._serving = self._serving, None
        if culprit is not None and self._live(culprit):
            self._close(culprit)
        while not self._closing:
            self.beat.beat()  # the 1 s select timeout beats an idle thread too
            for key, mask in self._sel.select(timeout=1.0):
                if key.data == "listen":
                    self._accept()
                elif key.data == "wake":
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except BlockingIOError:
                        pass
                else:
                    conn = key.data
                    self._serving = conn
                    if mask & selectors.EVENT_WRITE and self._live(conn):
                        self._writable(conn)
                    if mask & selectors.EVENT_READ and self._live(conn):
                        self._readable(conn)
                    self._serving = None
            self._drain_cmds()
            now = time.monotonic()
            if now >= next_sweep:
                self._sweep(now)
                next_sweep = now + 1.0

    def health(self) -> list[PartHealth]:
        """The I/O thread's record (for the engine's supervisor)."""
        return [thread_health("sip-tcp", self._thread, self.beat)]

    def _live(self, conn: _Conn) -> bool:
        return self._conns.get(conn.peer) is conn

    def _key(self, addr: tuple) -> tuple[str, int]:
        host, port = addr[0], addr[1]
        if self.uopts.family == socket.AF_INET6 and not host.startswith("["):
            host = f"[{host}]"
        return (host, int(port))

    def _accept(self) -> None:
        while True:
            try:
                sock, addr = self._lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as ex:
                log.warning("SIP TCP accept failed: %s", ex)
                return
            peer = self._key(addr)
            filt = self.uopts.accept_filter
            if len(self._conns) >= self.uopts.max_connections or (
                filt is not None and not filt(addr[0])
            ):
                sock.close()
                continue
            self._add(sock, peer, connecting=False)

    def _add(self, sock: socket.socket, peer: tuple[str, int], connecting: bool) -> _Conn:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        old = self._conns.get(peer)
        if old is not None:
            self._close(old)
        conn = _Conn(sock, peer, self.uopts.max_message_size, connecting)
        self._conns[peer] = conn
        events = selectors.EVENT_WRITE if connecting else selectors.EVENT_READ
        self._sel.register(sock, events, conn)
        return conn

    def _connect(self, peer: tuple[str, int]) -> _Conn | None:
        host = peer[0].strip("[]")
        try:
            ai = socket.getaddrinfo(host, peer[1], self.uopts.family, socket.SOCK_STREAM)
        except OSError as ex:
            self._warn(peer, "tcp_connect_failed", f"SIP TCP: cannot resolve: {ex}")
            return None
        sock = socket.socket(self.uopts.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        rc = sock.connect_ex(ai[0][4])
        if rc not in (0, errno.EINPROGRESS):
            self._warn(peer, "tcp_connect_failed", f"SIP TCP: connect failed: {errno.errorcode.get(rc, rc)}")
            sock.close()
            return None
        return self._add(sock, peer, connecting=True)

    def _drain_cmds(self) -> None:
        while self._cmds:
            data, address = self._cmds.popleft()
            conn = None
            if data.startswith(b"SIP/2.0 "):
                # RFC 3261 §18.2.2: the response goes on the request's connection.
                branch = top_via_branch(data)
                if branch is not None:
                    conn = self._conns.get(self._branches.get(branch, ("", 0)))
            if conn is None:
                conn = self._conns.get(self._key(address)) or self._connect(self._key(address))
            if conn is None or conn.closing:
                continue
            if len(conn.out) + len(data) > self.uopts.max_outbuf:
                log.warning("SIP TCP: %s is not reading, closing", conn.peer)
                self._close(conn)
                continue
            conn.out += data
            if not conn.connecting:
                self._writable(conn)

    def _readable(self, conn: _Conn) -> None:
        try:
            chunk = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not chunk:
            self._close(conn)
            return
        conn.last = time.monotonic()
        for ev in conn.framer.feed(chunk):
            if isinstance(ev, SipFrame):
                self._deliver(conn, ev.data)
            elif isinstance(ev, KeepAlivePing):
                conn.out += b"\r\n"  # RFC 5626 §4.4.1 pong
                self._writable(conn)
            else:
                reply = build_error_response(ev.head, ev.code, ev.reason, conn.peer)
                self._warn(conn.peer, "tcp_framing_errors",
                           f"SIP TCP: framing lost, answered {ev.code} {ev.reason} and closed")
                if reply is not None:
                    conn.out += reply
                conn.closing = True
                self._writable(conn)
                return

    def _deliver(self, conn: _Conn, data: bytes) -> None:
        gate = self.uopts.gate
        if gate is not None:
            if gate.refuse(data, conn.peer, lambda reply, _peer: self._queue_reply(conn, reply)):
                return
            gate.posted()
        if not data.startswith(b"SIP/2.0 "):
            branch = top_via_branch(data)
            if branch is not None:
                self._branches[branch] = conn.peer
                self._branches.move_to_end(branch)
                while len(self._branches) > 65536:
                    self._branches.popitem(last=False)
        ED2.callFromThread(self.handle_read, data, Remote_address(conn.peer, self.transport),
                           MonoTime())

    def _queue_reply(self, conn: _Conn, reply: bytes) -> None:
        """Write a reply made in this thread on the connection its request came on."""
        if not conn.closing:
            conn.out += reply
            self._writable(conn)

    def _writable(self, conn: _Conn) -> None:
        if conn.connecting:
            err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._warn(conn.peer, "tcp_connect_failed",
                           f"SIP TCP: connect failed: {errno.errorcode.get(err, err)}")
                self._close(conn)
                return
            conn.connecting = False
        if conn.out:
            try:
                sent = conn.sock.send(conn.out)
                del conn.out[:sent]
                conn.last = time.monotonic()
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self._close(conn)
                return
        if conn.closing and not conn.out:
            self._drain(conn)
            return
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.out else 0)
        self._sel.modify(conn.sock, want, conn)

    def _drain(self, conn: _Conn) -> None:
        """Half-close after an error reply, and read (and drop) what the peer still sends.

        Closing a socket with unread input makes the kernel send RST, and an RST can
        destroy the 513/400 we just wrote before the peer reads it (RFC 1122 §4.2.2.13);
        so: FIN first, discard input until the peer closes or a short grace ends.
        """
        if conn.drain_until is not None:
            return
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.drain_until = time.monotonic() + 2.0
        self._sel.modify(conn.sock, selectors.EVENT_READ, conn)

    def _sweep(self, now: float) -> None:
        for conn in list(self._conns.values()):
            if conn.drain_until is not None and now > conn.drain_until:
                self._close(conn)
                continue
            if conn.connecting and now - conn.started > self.uopts.connect_timeout:
                self._warn(conn.peer, "tcp_connect_failed", "SIP TCP: connect timed out")
                self._close(conn)
            elif not conn.out and now - conn.last > self.uopts.idle_timeout:
                self._close(conn)

    def _warn(self, peer: tuple[str, int], counter: str, what: str) -> None:
        """Log a per-peer fault: counted and rate-limited when a ``MalformedLog`` is set
        (a peer, or a forged Via/Contact, can make these happen at any rate)."""
        if self.uopts.malformed is not None:
            self.uopts.malformed.report(peer, counter, what, logging.WARNING)
        else:
            log.warning("%s: %s", peer, what)

    def _close(self, conn: _Conn, notify: bool = True) -> None:
        if self._conns.get(conn.peer) is conn:
            del self._conns[conn.peer]
        try:
            self._sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()
        if notify and self.uopts.on_close is not None:
            ED2.callFromThread(self.uopts.on_close, conn.peer)
