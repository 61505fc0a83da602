"""The engine's SIP side in one process, without sockets: sippy's transaction manager (ours,
PlateauTransactionManager), the router, registrar, switchboard and store, wired as
appliance/engine.py wires them. The UDP server is a fake that records what would be sent and
checks each destination as ``socket.sendto`` would; the media client is a fake that hands out
ports. What is under test is the path from bytes to a dialog, not the socket.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from sippy.Core.EventDispatcher import ED2
from sippy.Network_server import Network_server, Remote_address
from sippy.SipConf import SipConf
from sippy.Time.MonoTime import MonoTime
from sippy.Udp_server import Udp_server_opts

from appliance.pbx.switchboard import PbxSettings, Switchboard
from appliance.sip.context import SipChannelFactory, SipContext
from appliance.sip.digest import DigestAuthenticator
from appliance.sip.guard import ScannerGuard
from appliance.sip.registrar import Binding, Registrar
from appliance.sip.router import SipRouter
from appliance.sip.transactions import PlateauTransactionManager
from appliance.store.db import Store
from appliance.store.models import Extension, InboundRoute, Trunk

LOCAL = ("127.0.0.1", 5060)
TRUNK = ("192.0.2.1", 5060)
PHONE = ("198.51.100.7", 5062)


class SendError(Exception):
    """What ``socket.sendto`` (or the real sender thread around it) would raise."""


class FakeUdpServer(Network_server):
    """A sippy UDP server with no socket: ``send_to`` checks the destination and records."""

    transport = "udp"

    def __init__(self, global_config: dict[str, Any], uopts: Udp_server_opts) -> None:
        super().__init__(uopts)
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def send_to(self, data: bytes | str, address: object, delayed: bool = False) -> None:
        if not isinstance(address, tuple) or len(address) != 2:
            raise SendError(f"destination {address!r} is not (host, port)")
        host, port = address
        # OrderedUdpServer.resolve does int(port); sendto raises OverflowError outside 0-65535.
        try:
            port = int(port)
        except (TypeError, ValueError) as exc:
            raise SendError(f"destination port {port!r}") from exc
        if not isinstance(host, str) or not host or not 0 <= port <= 65535:
            raise SendError(f"destination {address!r} cannot be sent to")
        payload = data.encode() if isinstance(data, str) else data
        if len(self.sent) < 256:
            self.sent.append((payload, (host, port)))

    def join(self) -> None:
        pass

    def shutdown(self) -> None:
        pass


class _NullLog:
    def write(self, *args: object, **kwargs: object) -> None:
        pass


class _Timer:
    def cancel(self) -> None:
        pass


class FakeMedia:
    """The media client's surface, as calls that succeed: legs get ports, the rest is recorded."""

    def __init__(self) -> None:
        self.next_port = 20000
        self.calls = 0

    def create_leg(self, leg_id: str) -> int:
        self.next_port = self.next_port + 2 if self.next_port < 60000 else 20000
        return self.next_port

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)

        def call(*args: object, **kwargs: object) -> None:
            self.calls += 1

        return call


class _Tm(PlateauTransactionManager):
    model_udp_server = (FakeUdpServer, Udp_server_opts)


class SipRig:
    """One engine's SIP objects over a store in a temporary directory."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="plateau-fuzz-sip-", dir=os.environ.get("PLATEAU_FUZZ_TMP"))
        root = Path(self._dir.name)
        SipConf.my_address, SipConf.my_port = LOCAL
        self.store = Store(root / "plateau.db")
        self.store.put_extension(Extension(number="1001", name="Desk", secret="secret-1001"))
        self.store.put_extension(Extension(number="1002", name="Other", secret="secret-1002"))
        self.store.put_trunk(Trunk(name="carrier", host=TRUNK[0], port=TRUNK[1]))
        self.store.put_inbound_route(InboundRoute(did="442079460000", destination="1001"))
        self.media = FakeMedia()
        self.global_config: dict[str, Any] = {"_sip_address": LOCAL[0], "_sip_port": LOCAL[1],
                                              "_sip_logger": _NullLog()}
        self.pbx = Switchboard(self.store, self.media, lambda delay, fn: _Timer(),  # type: ignore[arg-type,return-value]
                               PbxSettings(tts_dir=root / "tts", flows_dir=root / "flows",
                                           sounds_dir=root / "sounds", recordings_dir=root / "recordings",
                                           voicemail_dir=root / "voicemail"))
        self.guard = ScannerGuard(max_failures=1_000_000)
        self.auth = DigestAuthenticator("pbx.example", b"k" * 32)
        self.registrar = Registrar(self.auth, self._secret, self.guard, lambda b: None, lambda aor, uri: None)
        self.registrar.restore([Binding("1001", f"sip:1001@{PHONE[0]}:{PHONE[1]}", PHONE, "udp",
                                        time.time() + 86400, "Phone/1.0", "reg-1", 1)])
        self.ctx = SipContext(self.global_config, self.media, LOCAL[0])
        self.pbx.factory = SipChannelFactory(self.ctx, self.registrar)
        self.router = SipRouter(self.ctx, self.pbx, self.registrar, self.auth, self.guard, self._secret)
        self.tm = _Tm(self.global_config, self.router, guard=self.guard)
        self.global_config["_sip_tm"] = self.tm
        self.server: FakeUdpServer = self.tm.l4r.getServer(TRUNK)

    def _secret(self, user: str) -> str | None:
        ext = self.pbx.dialplan.extensions.get(user)
        return ext.secret if ext is not None else None

    def receive(self, data: bytes, source: tuple[str, int]) -> None:
        """A datagram from ``source``, as the UDP receiver thread hands it over."""
        self.tm.handleIncoming(data, Remote_address(source, "udp"), self.server, MonoTime())

    def close(self) -> None:
        # sippy's timers only run in its event loop, which never runs here: drop them.
        ED2.tlisteners.clear()
        self.store.close()
        self._dir.cleanup()
