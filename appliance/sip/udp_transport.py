"""Order-preserving UDP transport for sippy.

sippy's ``Udp_server`` runs three sender and three receiver threads on one socket
(``_DEFAULT_NWORKERS = 3``); under load a 180 Ringing queued behind a slow send
can leave after the 200 OK that was queued later (ARCHITECTURE.md measured ~2 %).
RFC 3261 tolerates reordering, but phones and SBCs cope badly with a 180 after
the 200, so here exactly one thread sends and one receives: the send queue and the
ED2 call-from-thread queue are FIFO, so messages leave and are handled in the order
they were produced and received.

A message is sent at once, on the thread that sends it (the SIP loop), when the sender thread
is idle and nothing is queued: order is the same, and a loaded loop no longer pays a thread
hand-off for every datagram (a queue put, the sender's wake-up and its GIL round, about a tenth
of the loop at load, bench/sip_load.py). A send that would block, a host name to resolve, or
a busy sender takes the queue as before.

The receiver also reads with ``recvmsg`` into a 64 KiB buffer (sippy uses 8 KiB
and truncates larger datagrams silently) and flags truncation, so the transaction
manager can answer 513 instead of parsing half a message.
"""

from __future__ import annotations

import ipaddress
import queue
import select
import socket
import threading
from errno import EAGAIN, EBADF, ECONNRESET, EINTR, ENOBUFS, ENOTCONN, ESHUTDOWN, EWOULDBLOCK
from time import sleep

from sippy.Core.EventDispatcher import ED2
from sippy.Core.Exceptions import dump_exception
from sippy.Network_server import Remote_address
from sippy.Time.MonoTime import MonoTime
from sippy.Udp_server import Udp_server, Udp_server_opts

from appliance.sip.malformed import GLOBAL_KEY, MalformedLog
from appliance.sip.overload import GATE_KEY, OverloadGate

from appliance.system.liveness import Heartbeat, PartHealth
from appliance.system.supervisor import run_supervised, thread_health

__all__ = ["OrderedUdpServer", "OrderedUdpServerOpts", "model_udp_server"]

_RECV_BUF = 65536 + 1  # more than any UDP payload and than MAX_MESSAGE_SIZE
_SOCKET_BUFFER = 4 * 1024 * 1024
_IDLE_BEAT_S = 1.0  # an idle worker still beats this often (the watchdog's liveness check)
_MAX_BATCH = 32  # datagrams handed to the loop at once: a burst, not a backlog held back


class OrderedUdpServerOpts(Udp_server_opts):
    """``Udp_server_opts`` for ``OrderedUdpServer``.

    ``nworkers = 0`` tells sippy's ``Udp_server.__init__`` to start none of its own
    threads (and not to set SO_REUSEPORT, which would let a second engine bind the
    same port silently); ``OrderedUdpServer`` then starts exactly one of each.
    """

    nworkers = 0


class _Sender(threading.Thread):
    """Drain ``server.sendqueue`` in FIFO order on one thread."""

    daemon = True

    def __init__(self, server: OrderedUdpServer) -> None:
        super().__init__(name="sip-udp-send")
        self.server = server
        self.beat = Heartbeat()
        self.start()

    def run(self) -> None:
        # A death (one bad destination must not silence the transport) restarts the loop on
        # the same socket and queue; the datagram that killed it is not retried.
        run_supervised(self.name, self.beat, self._loop, lambda: self.server.closing)

    def _loop(self) -> None:
        srv = self.server
        while True:
            self.beat.beat()
            with srv.order_lock:
                # Idle only with nothing queued: every earlier datagram has left, so a direct
                # send by the loop (OrderedUdpServer.send_to) cannot overtake one.
                srv.sender_idle = srv.sendqueue.empty()
            try:
                item = srv.sendqueue.get(timeout=_IDLE_BEAT_S)
            except queue.Empty:
                continue
            # Busy until the next pass: also for an item put on the queue directly (sippy's
            # shutdown, a test), which no send_to marked; False needs no lock (it only stops
            # direct sends).
            srv.sender_idle = False
            if item is None:
                break
            data, address = item
            try:
                address = srv.resolve(address)
            except (OSError, ValueError, TypeError) as why:
                srv.send_failed(address, why)
                continue
            for _ in range(20):
                try:
                    if srv.skt.sendto(data, address) == len(data):
                        break
                except (OverflowError, ValueError, TypeError) as why:
                    # An address no check caught (resolve range-checks the port) must
                    # cost this one message, never the thread (issue 12, finding 1).
                    srv.send_failed(address, why)
                    break
                except OSError as why:
                    if why.errno in (EBADF,):
                        return
                    if why.errno not in (EWOULDBLOCK, ENOBUFS, EAGAIN):
                        srv.send_failed(address, why)
                        break
                sleep(0.01)


class _Receiver(threading.Thread):
    """Read datagrams on one thread and hand them to ED2 in arrival order."""

    daemon = True

    def __init__(self, server: OrderedUdpServer) -> None:
        super().__init__(name="sip-udp-recv")
        self.server = server
        self.beat = Heartbeat()
        self.start()

    def run(self) -> None:
        run_supervised(self.name, self.beat, self._loop, lambda: self.server.closing)

    def _loop(self) -> None:
        srv = self.server
        poller = select.poll()  # poll, not select: the fd may be above FD_SETSIZE
        poller.register(srv.skt.fileno(), select.POLLIN)
        while not srv.closing:
            self.beat.beat()
            try:
                # wait with a timeout so an idle receiver still beats
                if not poller.poll(_IDLE_BEAT_S * 1000):
                    continue
            except OSError as why:
                if why.errno in (ECONNRESET, ENOTCONN, ESHUTDOWN, EBADF):
                    break
                if why.errno != EINTR:
                    dump_exception("OrderedUdpServer: poll failed")
                continue
            batch = self._drain()
            if batch is None or srv.closing:
                break
            if batch:
                # One hand-over for every datagram that was waiting: at load the loop is woken
                # once per burst, not once per message (ED2's call-from-thread is a ctypes call
                # and a wake-up, 7 % of the SIP loop at 60 calls/s); order is kept.
                ED2.callFromThread(srv.handle_reads, batch, MonoTime())

    def _drain(self) -> list[tuple[bytes, Remote_address]] | None:
        """The datagrams waiting on the socket (at most _MAX_BATCH), each past the overload
        gate; None when the socket is gone."""
        srv = self.server
        batch: list[tuple[bytes, Remote_address]] = []
        flags = 0  # the first read follows poll(); the others must not wait
        while len(batch) < _MAX_BATCH:
            try:
                data, _anc, _flags, address = srv.skt.recvmsg(_RECV_BUF, 0, flags)
            except BlockingIOError:
                break
            except OSError as why:
                if why.errno in (ECONNRESET, ENOTCONN, ESHUTDOWN, EBADF):
                    return None
                if why.errno == EINTR:
                    continue
                dump_exception("OrderedUdpServer: receive failed")
                break
            flags = socket.MSG_DONTWAIT
            if srv.closing:
                return None
            if not data:
                continue
            # A truncated read (MSG_TRUNC) is already longer than any SIP message we
            # accept (64 KiB), so the transaction manager answers it 513.
            if srv.uopts.family == socket.AF_INET6:
                address = (f"[{address[0]}]", address[1])
            gate = srv.gate
            if gate is not None:
                # Overload: a new INVITE is refused here, before the loop's queue and parser.
                if gate.refuse(data, address, srv.send_to):
                    continue
                gate.posted()
            batch.append((data, Remote_address(address, srv.transport)))
        return batch


class OrderedUdpServer(Udp_server):
    """sippy ``Udp_server`` with one FIFO sender and one receiver thread."""

    closing = False
    #: Where send failures are counted: ``global_config["_plateau_malformed"]``, set by
    #: the transaction manager (sippy builds the servers, so it cannot pass it directly).
    malformed: MalformedLog | None = None
    #: ``global_config["_plateau_overload"]``: early shedding of new INVITEs, or None.
    gate: OverloadGate | None = None
    asenders: list[threading.Thread] | None
    areceivers: list[threading.Thread] | None
    #: True while the sender thread waits with an empty queue; guarded by ``order_lock``.
    sender_idle = False

    def __init__(self, global_config: dict, uopts: Udp_server_opts) -> None:
        # Let Udp_server bind the socket but start none of its own workers.
        if not isinstance(uopts, OrderedUdpServerOpts):
            uopts = OrderedUdpServerOpts(o=uopts)
        super().__init__(global_config, uopts)
        # A SimpleQueue, not sippy's Queue: its put is one C call, where Queue.put takes a
        # lock and notifies a Condition (8 % of the SIP loop at load, bench/sip_load.py); it
        # is as FIFO, and the only consumer is our one sender thread.
        self.sendqueue: queue.SimpleQueue[tuple[bytes, tuple] | None] = queue.SimpleQueue()
        self.order_lock = threading.Lock()
        self.malformed = global_config.get(GLOBAL_KEY)
        self.gate = global_config.get(GATE_KEY)
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                self.skt.setsockopt(socket.SOL_SOCKET, opt, _SOCKET_BUFFER)
            except OSError:
                pass  # capped by net.core.rmem_max; the default still works
        self.asenders = [_Sender(self)]
        self.areceivers = [_Receiver(self)]

    def handle_reads(self, batch: list[tuple[bytes, Remote_address]], rtime: MonoTime) -> None:
        """On the SIP loop: handle the datagrams one receiver read gave over, in order."""
        for data, address in batch:
            self.handle_read(data, address, rtime)

    def send_to(self, data: bytes | str, address: object, delayed: bool = False) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")  # sippy hands its messages over as text
        if (isinstance(address, tuple) and len(address) == 2
                and not self.closing and self.uopts.family == socket.AF_INET
                and not self.uopts.ploss_out_rate and not self.uopts.pdelay_out_max):
            with self.order_lock:
                if self.sender_idle and self.sendqueue.empty() and self._send_now(data, address):
                    return
                self.sender_idle = False  # what follows queues behind this datagram
        super().send_to(data, address, delayed)

    def _send_now(self, data: bytes, address: tuple) -> bool:
        """One non-blocking ``sendto`` to a literal address; False: let the sender thread try."""
        host, port = address
        if not (isinstance(host, str) and isinstance(port, int) and 0 < port <= 65535):
            return False  # a name to resolve, or a port the sender reports as a failure
        try:
            socket.inet_pton(socket.AF_INET, host)  # a dotted quad: sendto resolves nothing
        except OSError:
            return False
        try:
            self.skt.sendto(data, socket.MSG_DONTWAIT, (host, port))  # a datagram: all or an error
        except OSError as why:
            if why.errno in (EWOULDBLOCK, ENOBUFS, EAGAIN):
                return False  # the sender thread retries (and may block) off the loop
            self.send_failed(address, why)
        return True

    def resolve(self, address: tuple) -> tuple:
        """Socket address for ``(host, port)``; DNS only when host is not a literal.

        Raises ValueError for a port outside 1-65535: a Via or Contact from the network
        may name any number, and ``sendto`` raises OverflowError on it.
        """
        host, port = str(address[0]), int(address[1])
        if not 0 < port <= 65535:
            raise ValueError(f"port {port} out of range")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            ipaddress.ip_address(host)
            return (host, port)
        except ValueError:
            pass
        ai = socket.getaddrinfo(host, None, self.uopts.family)
        sockaddr: tuple = ai[0][4]
        if self.uopts.family == socket.AF_INET:
            return (sockaddr[0], port)
        return (sockaddr[0], port, sockaddr[2], sockaddr[3])

    def send_failed(self, address: object, why: BaseException) -> None:
        """Count (and log, rate-limited) a message that could not be sent to ``address``."""
        malformed = self.malformed
        if malformed is not None:
            src = address if isinstance(address, tuple) and address else str(address)
            malformed.report(src, "send_failed", f"cannot send: {why!r}")

    def health(self) -> list[PartHealth]:
        """One record per worker thread (for the engine's supervisor)."""
        return [thread_health(w.name, w, w.beat)  # type: ignore[attr-defined]
                for w in (*(self.asenders or ()), *(self.areceivers or ()))]

    def shutdown(self) -> None:
        self.closing = True
        super().shutdown()

    def join(self) -> None:
        for worker in self.asenders or ():
            worker.join()
        # shutdown(SHUT_RDWR) in Udp_server.shutdown wakes recvmsg on Linux.
        for worker in self.areceivers or ():
            worker.join(timeout=2.0)
        self.skt.close()
        self.asenders = None
        self.areceivers = None


#: Plug into sippy: ``SipTransactionManager.model_udp_server = model_udp_server``.
model_udp_server = (OrderedUdpServer, OrderedUdpServerOpts)
