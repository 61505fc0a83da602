"""The engine process: SIP on sippy's event loop, the PBX, the media process, the store, the API.

Call control is single-threaded in sippy's loop (ED2); the media engine runs in its own
process, and the control API's threads reach the loop only through ED2.callFromThreadSync.
"""
from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import secrets
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sippy.Core.EventDispatcher import ED2
from sippy.SipConf import SipConf
from sippy.Time.Timeout import Timeout

from appliance.api.apifile import write_api_file
from appliance.api.facade import ApiError
from appliance.api.server import ControlApiServer
from appliance.cluster.nodes import NodeWatch, rejoin
from appliance.media.client import MediaClient
from appliance.media.events import DtmfEvent, MachineDetected, PlaybackFinished, RecordingFailed, RtpTimeout
from appliance.media.ledger import MediaRestarted
from appliance.media.protocol import MediaError
from appliance.pbx.channel import Cause, DtmfReceived, MediaTimeout, PlaybackEnded
from appliance.pbx.dialer import Dialer
from appliance.pbx.dialer_api import DialerApi
from appliance.pbx.sounds import ensure_default_moh
from appliance.pbx.roster import AgentError
from appliance.sip.mwi import MwiNotifier
from appliance.store import interactions, queue_log
from appliance.store.errors import ConfigError, StoreError
from appliance.pbx.switchboard import PbxError, PbxSettings, Switchboard
from appliance.sip.context import SipChannelFactory, SipContext
from appliance.sip.digest import DigestAuthenticator
from appliance.sip.front_door import FrontDoors
from appliance.sip.guard import BlockedEntry, ScannerGuard
from appliance.sip.registrar import Binding, Registrar
from appliance.sip.router import SipRouter
from appliance.sip.sippy_clock import use_fast_clock
from appliance.sip.sippy_placeholders import use_fast_placeholder_checks
from appliance.sip.transactions import PlateauTransactionManager
from appliance.sip.trunks import TrunkRegistrations
from appliance.store.db import Store
from appliance.store.notify import config_listener
from appliance.store.models import BlockedAddress, Registration
from appliance.store.site_secrets import site_secret
from appliance.system import systemd
from appliance.system.liveness import Heartbeat, PartHealth
from appliance.system.supervisor import Supervisor

if TYPE_CHECKING:  # imported when the files exist (open_hardware, open_headsets)
    from hw.headsets import HeadsetSupervisor
    from hw.manager import HardwareManager

log = logging.getLogger("plateau.engine")
VERSION = "0.1.0"
# A call whose RTP port could not be bound again after a media restart (another process took
# it): released with a cause the CDR keeps, rather than left silent.
MEDIA_LOST = Cause(503, "Media lost: RTP port not re-created after a media process restart")


@dataclass
class EngineOptions:
    data_dir: Path
    sip_ip: str = "127.0.0.1"
    sip_port: int = 5060
    api_port: int = 5080
    rtp_min: int = 20000
    rtp_max: int = 29999
    realm: str = "plateau"
    tone_country: str = "FR"
    failure_tone_seconds: float = 2.0
    block_failures: int = 10
    block_seconds: float = 900.0
    digest_algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    rtp_timeout: float = 60.0
    db: str | None = None  # a PostgreSQL URL or a SQLite path; None: data_dir/plateau.db
    node: str = dataclasses.field(default_factory=socket.gethostname)  # this engine's name on the site
    # Where recordings/ and voicemail/ live: a directory every engine of the site reaches (a
    # network share, image/README.md); None: the data directory, as on one box.
    shared_dir: Path | None = None
    front_doors: tuple[str, ...] = ()  # the site's Kamailio addresses (sip/front_door.py)
    outbound_proxy: tuple[str, int] | None = None  # trunk calls through the front door (host, port)

    @property
    def files_dir(self) -> Path:
        """The directory holding recordings/ and voicemail/."""
        return self.shared_dir or self.data_dir


class SipLog:
    """sippy's message log, sent to our logger at DEBUG so it costs nothing when off."""

    def write(self, *args: Any, **kwargs: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("".join(str(a) for a in args))


def _binding(r: Registration) -> Binding:
    return Binding(r.aor, r.contact, (r.source_host, r.source_port), r.transport, r.expires_at,
                   r.user_agent, r.call_id, r.cseq, r.path)


def _secret_key(data_dir: Path) -> bytes:
    """A per-installation key for digest nonces, kept so restarts do not invalidate nonces."""
    path = data_dir / "nonce.key"
    if not path.exists():
        path.write_bytes(secrets.token_bytes(32))
        path.chmod(0o600)
    return path.read_bytes()


class Engine:
    """Everything the engine process runs."""

    def __init__(self, opts: EngineOptions) -> None:
        use_fast_clock()
        use_fast_placeholder_checks()
        self.opts = opts
        self.started = time.time()
        opts.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(opts.db or opts.data_dir / "plateau.db", node=opts.node)
        self.store.reserve_deferred_ids()  # several engines on PostgreSQL: store/writes.py
        self._end_leftovers()
        # On a shared store: this node's heartbeat and the watch over its peers, in a thread and on
        # a connection of their own (appliance/cluster/nodes.py); started in run().
        self.watch: NodeWatch | None = (
            NodeWatch(Store(str(opts.db), node=opts.node), opts.node, sip=self._sip_address(),
                      api=self._api_url()) if self.store.shared else None)
        self.media = MediaClient.start(opts.sip_ip, opts.rtp_min, opts.rtp_max, rtp_timeout_s=opts.rtp_timeout)
        self.media.set_event_handler(lambda ev: ED2.callFromThread(self._media_event, ev))
        self.media.on_restart = lambda report: ED2.callFromThread(self._media_restarted, report)
        self.exit_code = 0
        self.supervisor: Supervisor | None = None
        self.loop_beat = Heartbeat()  # the SIP event loop (ED2): beaten by a timer in it

        SipConf.my_address = opts.sip_ip
        SipConf.my_port = opts.sip_port
        SipConf.my_uaname = "Plateau"
        self.global_config: dict[str, Any] = {
            "_sip_address": opts.sip_ip,
            "_sip_port": opts.sip_port,
            "_sip_logger": SipLog(),
        }
        # A front door is never blocked: its senders are counted by their own addresses.
        self.front_doors = FrontDoors(opts.front_doors)
        self.guard = ScannerGuard(max_failures=opts.block_failures, block_seconds=opts.block_seconds,
                                  on_block=self._persist_block, allowlist=opts.front_doors)
        self.guard.restore(BlockedEntry(b.address, b.until, b.reason, b.failures)
                           for b in self.store.blocks(time.time()))
        self.auth = DigestAuthenticator(opts.realm, self._nonce_key(),
                                        algorithms=opts.digest_algorithms)
        moh = ensure_default_moh(opts.data_dir / "sounds" / "moh.wav")
        self.pbx = Switchboard(self.store, self.media, self._schedule,
                               PbxSettings(opts.tone_country, opts.failure_tone_seconds, moh,
                                           flows_dir=opts.data_dir / "flows", sounds_dir=opts.data_dir / "sounds",
                                           tts_dir=opts.data_dir / "tts",
                                           recordings_dir=opts.files_dir / "recordings",
                                           voicemail_dir=opts.files_dir / "voicemail",
                                           node=opts.node))
        self.pbx.preload_flows()
        self.dialer = Dialer(self.pbx)
        self.registrar = Registrar(self.auth, self._lookup_secret, self.guard,
                                   self._persist_binding, self._forget_binding,
                                   site_contacts=self._site_contacts if self.store.shared else None,
                                   front_doors=self.front_doors)
        now = time.time()
        self.registrar.restore(_binding(r) for r in self.store.registrations(now))
        self.ctx = SipContext(self.global_config, self.media, opts.sip_ip)
        self.pbx.factory = SipChannelFactory(self.ctx, self.registrar, opts.outbound_proxy)
        # Line boards (FXS phones, FXO lines) when data/hardware.yaml exists; started in run().
        self.hardware: HardwareManager | None = (self.open_hardware() if (opts.data_dir / "hardware.yaml").exists()
                                                 else None)
        # USB headsets (one pjsua2 softphone process each) when data/headsets.yaml exists.
        self.headsets: HeadsetSupervisor | None = (self.open_headsets() if (opts.data_dir / "headsets.yaml").exists()
                                                   else None)
        self.router = SipRouter(self.ctx, self.pbx, self.registrar, self.auth, self.guard, self._lookup_secret,
                                front_doors=self.front_doors)
        self.tm = PlateauTransactionManager(self.global_config, self.router,
                                            tcp_laddress=(opts.sip_ip, opts.sip_port), guard=self.guard)
        self.global_config["_sip_tm"] = self.tm
        # The media commands one SIP message causes (2-5 in a call's set-up or end) go to the
        # media process as one message (measured: one send and one wake-up instead of ~9 a call).
        self.tm.step_scope = self.media.batch
        self.mwi = MwiNotifier(self.global_config, self.registrar, self.pbx.mailboxes.counts)
        self.router.mwi = self.mwi
        self.pbx.on_message_waiting = lambda mailbox: self.mwi.notify(mailbox, *self.pbx.mailboxes.counts(mailbox))
        self.trunks = TrunkRegistrations(self.global_config, self.store)
        # Engines sharing one PostgreSQL store: a configuration change committed by any of them
        # (web UI, control API, config import) reloads here too (store/notify.py).
        self.config_notices = config_listener(
            self.store, lambda: ED2.callFromThread(self._site_configuration_changed))
        self.api_token = secrets.token_urlsafe(32)
        self.api = ControlApiServer("127.0.0.1", opts.api_port, self.api_token, EngineApi(self),
                                    ED2.callFromThreadSync)

    # -- glue -------------------------------------------------------------------------
    def _sip_address(self) -> str:
        return f"{self.opts.sip_ip}:{self.opts.sip_port}"

    def _api_url(self) -> str:
        return f"http://127.0.0.1:{self.opts.api_port}"

    def _end_leftovers(self) -> None:
        """End the calls a crash of this node left open (CDRs, queue log): this node's only on a
        shared store, where the other engines' calls are live; every one on one box."""
        now = time.time()
        try:
            ended = rejoin(self.store, self.opts.node, now, self._sip_address(), self._api_url())
        except self.store.db_error as exc:  # a full disk or a lock: the CDR close waits in memory
            log.warning("ending the calls a crash left open failed (%s): closing their CDRs deferred", exc)
            node = self.opts.node if self.store.shared else None
            ended = {"cdr": self.store.close_interrupted(now, node=node)}
        if any(ended.values()):
            log.warning("ended what a crash of this node left open, as INTERRUPTED: %s", ended)

    def open_hardware(self) -> HardwareManager:
        """A HardwareManager for data/hardware.yaml (at start, or when a reload finds the file)."""
        from hw.manager import HardwareManager

        return HardwareManager(self.pbx, self.media, self._schedule, self.opts.data_dir / "hardware.yaml",
                               channels_by_leg=self.ctx.channels_by_leg, media_host=self.opts.sip_ip)

    def open_headsets(self) -> HeadsetSupervisor:
        """A HeadsetSupervisor for data/headsets.yaml, not started (at start, or on a reload)."""
        from hw.headsets import HeadsetSupervisor

        registrar = "127.0.0.1" if self.opts.sip_ip in ("", "0.0.0.0") else self.opts.sip_ip
        return HeadsetSupervisor.from_file(self.opts.data_dir / "headsets.yaml", registrar, self.opts.sip_port)

    def _nonce_key(self) -> bytes:
        """The digest nonce key: the site's when the store is shared, so that a REGISTER
        challenged by one engine and answered to another passes; else this box's file."""
        if self.store.shared:
            return bytes.fromhex(site_secret(self.store, "digest_nonce_key", lambda: secrets.token_hex(32)))
        return _secret_key(self.opts.data_dir)

    def reload_configuration(self) -> None:
        """Take the store's configuration (in ED2): calls in progress keep the one they started with."""
        self.pbx.reload()
        self.dialer.reload()
        self.trunks.reload()

    def _site_configuration_changed(self) -> None:
        try:
            self.reload_configuration()
        except Exception:  # a bad reload keeps the running configuration; the next notice retries
            log.exception("reloading the site's configuration failed; the running one is kept")
            return
        log.info("configuration reloaded: changed on the site")

    def _schedule(self, delay: float, fn: Any) -> Timeout:
        return Timeout(fn, delay)

    def _lookup_secret(self, username: str) -> str | None:
        ext = self.pbx.dialplan.extensions.get(username)
        if ext is None or not ext.enabled:
            return None
        return ext.secret

    def _persist_binding(self, b: Binding) -> None:
        self.store.save_registration(Registration(
            b.aor, b.contact_uri, b.source[0], int(b.source[1]), b.transport, b.expires_at,
            b.user_agent or "", b.call_id, b.cseq, b.path))

    def _site_contacts(self, aor: str) -> list[Binding] | None:
        """The site's bindings of ``aor`` from the shared store; None when it is unreachable."""
        try:
            rows = self.store.registrations(time.time(), aor=aor)
        except (StoreError, self.store.db_error) as exc:  # the database away: this engine's own
            log.warning("site registrations of %s unreadable (%s): using this engine's own", aor, exc)
            return None
        return [_binding(r) for r in rows]

    def _forget_binding(self, aor: str, contact: str) -> None:
        self.store.delete_registration(aor, contact)

    def _persist_block(self, entry: BlockedEntry) -> None:
        log.warning("blocked %s until %s: %s", entry.address, time.ctime(entry.until), entry.reason)
        self.store.save_block(BlockedAddress(entry.address, entry.until, entry.reason, entry.failures))

    def _media_event(self, event: Any) -> None:
        with self.media.batch():
            self._on_media_event(event)

    def _on_media_event(self, event: Any) -> None:
        if isinstance(event, MachineDetected):
            self.dialer.machine_detected(event.leg_id, event.verdict, event.cause, event.ms)
            return
        if isinstance(event, RecordingFailed):
            self.pbx.recorder.failed(event.path, event.error, event.seconds)
            return
        chan = self.ctx.channels_by_leg.get(getattr(event, "leg_id", ""))
        if chan is None:
            return
        if isinstance(event, DtmfEvent):
            chan.post(DtmfReceived(chan, event.digit, event.source, event.duration_ms))
        elif isinstance(event, RtpTimeout):
            chan.post(MediaTimeout(chan, event.seconds))
        elif isinstance(event, PlaybackFinished):
            chan.post(PlaybackEnded(chan, event.play_id))

    def _media_restarted(self, report: MediaRestarted) -> None:
        """A new media process holds every leg again: continue recordings in their new file,
        release the calls whose leg could not be re-created."""
        by_rec = {rec.rec_id: rec for rec in self.pbx.recordings.active()}
        for cont in report.recordings:
            rec = by_rec.get(cont.rec_id)
            if rec is not None:
                self.pbx.recorder.continued(rec, Path(cont.new_path), cont.part, cont.gap_s, report.died_at)
        for leg_id in report.lost_legs:
            chan = self.ctx.channels_by_leg.get(leg_id)
            call = getattr(chan, "owner", None) if chan is not None else None
            if call is not None and hasattr(call, "release"):
                log.error("call %s released: its leg %s could not be re-created", call.id, leg_id)
                call.release(MEDIA_LOST)

    # -- supervision -----------------------------------------------------------------
    def _sip_parts(self) -> list[PartHealth]:
        parts = [self.loop_beat.health("sip-loop", True)]
        l4r = getattr(self.tm, "l4r", None)
        for server in list(getattr(l4r, "cache_l2s", {}).values()):
            parts.extend(server.health())
        if self.tm.tcp_server is not None:
            parts.extend(self.tm.tcp_server.health())
        return parts

    def _hardware_parts(self) -> list[PartHealth]:
        parts: list[PartHealth] = []
        for owner in (self.hardware, self.headsets):
            if owner is not None:  # hw.* report their threads and processes
                parts.extend(owner.health())
        return parts

    def _build_supervisor(self, interval: float | None) -> Supervisor:
        sup = Supervisor(period_s=min(interval, 1.0) if interval else 1.0,
                         on_fatal=lambda reason: ED2.callFromThread(self._fatal, reason),
                         ping=systemd.notify_watchdog if interval else (lambda: None))
        sup.add("sip", self._sip_parts)
        sup.add("control-api", self.api.health)
        sup.add("media", self.media.health)
        sup.add("hardware", self._hardware_parts)
        sup.add("store", self.store.parts)  # the deferred-write flusher, while writes are queued
        if self.watch is not None:
            sup.add("node-watch", self.watch.parts)
        if self.config_notices is not None:
            sup.add("config-notices", self.config_notices.health)
        sup.add_probe(self.media.probe)
        return sup

    def _fatal(self, reason: str) -> None:
        log.critical("engine exiting so that systemd restarts it: %s", reason)
        self.exit_code = 1
        self._stop()

    def _housekeeping(self) -> None:
        self.registrar.expire(time.time())
        self.store.purge_registrations(time.time())
        systemd.notify_status(f"{len(self.pbx.calls)} active calls, "
                              f"{len(self.registrar.all_bindings())} registrations")

    # -- run ----------------------------------------------------------------------------
    def run(self) -> int:
        self.api.start()
        url = f"http://127.0.0.1:{self.api.port}"
        write_api_file(self.opts.data_dir, url, self.api_token)
        self.trunks.start()
        if self.config_notices is not None:
            self.config_notices.start()
        self.pbx.start()
        self.dialer.start()
        if self.hardware is not None:
            self.hardware.start()
        if self.headsets is not None:
            self.headsets.start()  # their REGISTERs wait in the socket until ED2.loop() runs
        if self.watch is not None:
            self.watch.start(api=url)
        Timeout(self._housekeeping, 10.0, -1)
        Timeout(self.loop_beat.beat, 0.5, -1)
        # The watchdog is pinged by the supervisor's own thread, and only while every part is
        # alive and making progress (a wedged SIP loop, transport or media process stops it).
        self.supervisor = self._build_supervisor(systemd.watchdog_interval())
        self.supervisor.start()
        for signum in (signal.SIGTERM, signal.SIGINT):
            ED2.regSignal(signum, self._stop)
        systemd.notify_ready()
        systemd.notify_status("ready")
        print(f"Plateau engine ready: SIP udp+tcp {self.opts.sip_ip}:{self.opts.sip_port}, "
              f"control API {url}, data {self.opts.data_dir}", flush=True)
        try:
            ED2.loop()
        finally:
            self.shutdown()
        return self.exit_code

    def _stop(self) -> None:
        log.info("stopping")
        systemd.notify_stopping()
        for call in list(self.pbx.calls.values()):
            call.hangup()
        ED2.breakLoop()

    def shutdown(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop()
        self.api.stop()
        if self.config_notices is not None:
            self.config_notices.stop()
        self.trunks.stop()
        if self.hardware is not None:
            self.hardware.stop()
        if self.headsets is not None:
            self.headsets.stop()
        try:
            os.unlink(self.opts.data_dir / "api.json")
        except FileNotFoundError:
            pass
        self.media.close()
        if self.watch is not None:
            self.watch.stop()  # after the calls were hung up: this node leaves the site cleanly
            self.watch.store.close()
        self.store.close()


class EngineApi(DialerApi):
    """The control API's view of the engine (runs in the engine loop)."""

    def __init__(self, engine: Engine) -> None:
        self.e = engine

    def status(self) -> dict[str, Any]:
        e = self.e
        return {
            "version": VERSION,
            "uptime": round(time.time() - e.started, 1),
            "hostname": socket.gethostname(),
            "node": e.opts.node,
            "site": e.watch.status() if e.watch is not None else None,
            "sip": {"address": e.opts.sip_ip, "port": e.opts.sip_port, "transports": ["udp", "tcp"],
                    **e.tm.edge_status()},
            "calls": len(e.pbx.calls),
            "invites_shed": e.router.shed,
            "in_dialog": e.ctx.dialog_guard.status(),
            "pin_lockouts": e.pbx.pins.status(),
            "channels": len(e.pbx.all_channels()),
            "registrations": len(e.registrar.all_bindings()),
            "blocked": len(e.guard.blocked()),
            "trunks": e.trunks.status(),
            "media": self._media_stats(),
            "storage": e.store.storage_status().as_dict(),  # disk full / locked: writes deferred
            "supervision": e.supervisor.status() if e.supervisor is not None else None,
            "hardware": self.hardware() if e.hardware is not None or e.headsets is not None else None,
        }

    def _media_stats(self) -> dict[str, Any]:
        try:
            stats = self.e.media.engine_stats()
        except MediaError as exc:  # restarting: status still answers, and says so
            stats = {"error": str(exc)}
        last = self.e.media.last_restart
        stats["restarts"] = self.e.media.process_beat.restarts
        stats["last_restart"] = None if last is None else {
            "died_at": last.died_at, "cause": last.cause, "down_s": round(last.down_s, 3),
            "legs": last.legs, "lost_legs": last.lost_legs, "recordings_continued": len(last.recordings)}
        return stats

    def hardware(self) -> dict[str, Any]:
        if self.e.hardware is None:
            out: dict[str, Any] = {"config": None, "error": None, "boards": [], "modems": []}
        else:
            out = dict(self.e.hardware.status())
        if self.e.headsets is not None:
            out["headsets"] = self.e.headsets.status()
            if self.e.headsets.error:
                out["headsets_error"] = self.e.headsets.error
        return out

    def headsets(self) -> list[dict[str, Any]]:
        return self.e.headsets.status() if self.e.headsets is not None else []

    def headset_action(self, extension: str, action: str) -> dict[str, Any]:
        """Runs in the API thread, not the loop (the route says so): it waits for the headset's process."""
        from hw.headsets import HeadsetCommandError, HeadsetRefused, HeadsetTimeout, UnknownHeadset

        if self.e.headsets is None:
            raise ApiError(404, f"no headset on extension {extension}")
        try:
            reply = self.e.headsets.command(extension, action)
        except UnknownHeadset as exc:
            raise ApiError(404, str(exc)) from exc
        except HeadsetRefused as exc:  # IllegalTransition: nothing rings, no call to hang up...
            raise ApiError(409, str(exc)) from exc
        except HeadsetTimeout as exc:
            raise ApiError(504, str(exc)) from exc
        except HeadsetCommandError as exc:  # its process is down or restarting
            raise ApiError(503, str(exc)) from exc
        return {"extension": extension, "action": action, "state": reply.get("state")}

    def registrations(self) -> list[dict[str, Any]]:
        return [{"aor": b.aor, "contact": b.contact_uri, "source": f"{b.source[0]}:{b.source[1]}",
                 "transport": b.transport, "expires_in": max(0, round(b.expires_at - time.time())),
                 "user_agent": b.user_agent} for b in self.e.registrar.all_bindings()]

    def channels(self) -> list[dict[str, Any]]:
        return [dict(chan.info().__dict__, call=getattr(chan.owner, "id", None))
                for chan in self.e.pbx.all_channels()]

    def bridges(self) -> list[dict[str, Any]]:
        return [{"id": c.bridge_id, "call": c.id, "channels": [c.a.id, c.b.id]}
                for c in self.e.pbx.calls.values() if c.b is not None and c.state.value == "up"]

    def calls(self) -> list[dict[str, Any]]:
        return [c.info() for c in self.e.pbx.calls.values()]

    def blocked(self) -> list[dict[str, Any]]:
        return [{"address": b.address, "until": b.until, "reason": b.reason, "failures": b.failures}
                for b in self.e.guard.blocked()]

    def unblock(self, address: str) -> dict[str, Any]:
        if not self.e.guard.unblock(address):
            raise ApiError(404, f"{address} is not blocked")
        self.e.store.delete_block(address)
        return {"unblocked": address}

    def originate(self, from_ext: str, to: str, caller_id: str | None) -> dict[str, Any]:
        if caller_id is not None:
            # Presentation follows the extension and the outbound route (the toll-fraud and
            # CLI rules); an API-chosen number would bypass them.
            raise ApiError(400, "caller_id cannot be chosen here: it follows the extension and route")
        try:
            call = self.e.pbx.originate(from_ext, to)
        except PbxError as exc:
            raise ApiError(exc.status, str(exc)) from exc
        return {"call": call.id}

    def hangup(self, channel_id: str) -> dict[str, Any]:
        try:
            self.e.pbx.hangup_channel(channel_id)
        except PbxError as exc:
            raise ApiError(exc.status, str(exc)) from exc
        return {"hungup": channel_id}

    def transfer(self, channel_id: str, to: str) -> dict[str, Any]:
        try:
            self.e.pbx.transfer_channel(channel_id, to)
        except PbxError as exc:
            raise ApiError(exc.status, str(exc)) from exc
        return {"transferring": channel_id, "to": to}

    def reload(self) -> dict[str, Any]:
        from hw.reload import HardwareReload, ReloadRefused

        try:  # hardware.yaml and headsets.yaml are checked before anything is applied
            plan = HardwareReload.read(self.e.opts.data_dir, self.e.hardware, self.e.headsets, self.e.open_headsets)
        except ReloadRefused as exc:
            raise ApiError(400, f"{exc}; the running configuration is kept") from exc
        self.e.reload_configuration()
        self.e.hardware, self.e.headsets = plan.apply(self.e.hardware, self.e.headsets, self.e.open_hardware)
        return {"reloaded": True, "hardware": plan.changes}

    def agents(self) -> list[dict[str, Any]]:
        return self.e.pbx.distributor.agent_status()

    def agent_action(self, agent_id: str, action: str, device: str | None, reason: str | None) -> dict[str, Any]:
        roster = self.e.pbx.distributor.roster
        try:
            if action == "login":
                if device not in self.e.pbx.dialplan.extensions:
                    raise ApiError(400, f"device {device!r} is not an extension")
                agent = roster.login(agent_id, None, device)
            elif action == "logout":
                agent = roster.logout(agent_id)
            elif action == "pause":
                agent = roster.pause(agent_id, reason or "")
            else:
                agent = roster.unpause(agent_id)
        except AgentError as exc:
            raise ApiError(exc.status, str(exc)) from exc
        return {"agent": agent.agent_id, "state": agent.state.value, "pause_reason": agent.pause_reason}

    def queues(self) -> list[dict[str, Any]]:
        return self.e.pbx.distributor.queue_status()

    def monitor(self, agent_id: str, device: str, mode: str) -> dict[str, Any]:
        try:
            call = self.e.pbx.supervision.originate(agent_id, device, mode)
        except PbxError as exc:
            raise ApiError(exc.status, str(exc)) from exc
        return {"call": call.id, "agent": agent_id, "device": device, "mode": mode}

    def monitors(self) -> list[dict[str, Any]]:
        return self.e.pbx.supervision.sessions()

    def queue_kpis(self, name: str) -> dict[str, Any]:
        cfg = self.e.pbx.distributor.queues.get(name)
        if cfg is None:
            raise ApiError(404, f"no queue {name}")
        now = time.time()
        start = datetime.datetime.combine(datetime.date.today(), datetime.time()).timestamp()
        k = queue_log.kpis(self.e.store, start, now, name, float(cfg.config.service_level_seconds))
        survey = interactions.survey_kpis(self.e.store, start, now, queue=name)
        return {"queue": name, "since": start, **dataclasses.asdict(k), "survey": dataclasses.asdict(survey)}

    def interaction(self, interaction_id: str) -> dict[str, Any]:
        found = interactions.get_interaction(self.e.store, int(interaction_id))
        if found is None:
            raise ApiError(404, f"no interaction {interaction_id}")
        return dataclasses.asdict(found)

    def update_interaction(self, interaction_id: str, status: str | None, disposition: str | None,
                           notes: str | None) -> dict[str, Any]:
        try:
            updated = interactions.update_interaction(self.e.store, int(interaction_id), at=time.time(),
                                                      status=status, disposition=disposition, notes=notes)
        except ConfigError as exc:
            raise ApiError.refused(exc) from exc
        except StoreError as exc:
            raise ApiError(404, str(exc)) from exc
        return dataclasses.asdict(updated)
