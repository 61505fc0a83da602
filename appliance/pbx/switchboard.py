"""The PBX: owns the calls, the dialplan snapshot and the bridge between channels and media.

Technology layers (sip/, later hw/) hand it inbound channels and build outbound ones
through a `ChannelFactory`; everything it does to audio goes through the media client.
"""
from __future__ import annotations

import logging
import re
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from appliance.ivr.contacts import StoreContacts
from appliance.ivr.flow import Flow, FlowError, load_flow_file
from appliance.ivr.session import IvrSession
from appliance.ivr.tts import PromptCache, TtsError
from appliance.pbx.call import Call
from appliance.pbx import destinations
from appliance.pbx.bus import EventBus
from appliance.pbx.call_directory import CallDirectory
from appliance.pbx.call_factory import CallFactory
from appliance.pbx.events import SurveyDue, TransferAsked
from appliance.pbx.errors import PbxError
from appliance.pbx.originate import originate
from appliance.pbx.distributor import CallDistributor
from appliance.pbx.features import FeatureCodes
from appliance.pbx.call_recording import CallRecordings
from appliance.pbx.recording import Recorder
from appliance.pbx.survey import PostCallSurvey, SurveyAfterAgent
from appliance.schema.settings import CALLBACK_ROUTES_SETTING, SETTINGS, names
from appliance.voicemail.mailbox import Mailboxes
from appliance.voicemail.service import Voicemail
from appliance.pbx.channel import Channel, Party
from appliance.pbx.dialplan import Dialplan, Refused, ToExtension, ToTrunk
from appliance.pbx.permission import TRUNK_TRANSFER_SETTING, Principal
from appliance.pbx.pin_guard import PinGuard
from appliance.pbx.ports import MediaPort, Scheduler
from appliance.pbx.supervision import Supervision
from appliance.pbx.transfer import Transfers
from appliance.pbx.voicemail_calls import VoicemailOnCalls
from appliance.store import acd as acd_store
from appliance.store.db import Store
from appliance.store.models import Extension, QueueConfig

log = logging.getLogger("plateau.pbx")
RETENTION_INTERVAL_S = 6 * 3600.0
_KEPT_VERSION = re.compile(r"\.v[0-9]+$")  # the retention job runs at start-up and four times a day


class ChannelFactory(Protocol):
    """What a technology layer offers the PBX for outbound legs."""

    def channels_for_extension(self, ext: Extension, caller: Party) -> list[Channel]: ...

    def channel_for_trunk(self, dest: ToTrunk, caller: Party) -> Channel: ...

    def reachable(self, number: str) -> bool: ...


@dataclass
class PbxSettings:
    tone_country: str = "FR"
    failure_tone_seconds: float = 2.0
    moh_path: Path | None = None
    flows_dir: Path | None = None
    sounds_dir: Path | None = None
    tts_dir: Path | None = None
    recordings_dir: Path | None = None
    voicemail_dir: Path | None = None
    pin_failures: int = 5  # wrong PINs (per caller, per mailbox/agent) before a lockout
    pin_window_s: float = 900.0
    pin_lock_s: float = 900.0
    node: str = "local"  # this engine's name on the site (EngineOptions.node)


class Switchboard:
    """Calls, their channels, and the routing snapshot they use."""

    def __init__(self, store: Store, media: MediaPort, schedule: Scheduler, settings: PbxSettings,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.media = media
        self.schedule = schedule
        self.settings = settings
        self.clock = clock
        self.factory: ChannelFactory | None = None
        self.events = EventBus()  # call-level events (events.py), synchronous in the engine loop
        self.calls = CallDirectory()  # the live calls by id, listed by the call factory
        self.call_factory = CallFactory(self, self.calls)
        self.destinations = destinations.standard()  # destination kind -> handler
        self._device_channels: dict[str, weakref.WeakSet[Channel]] = {}
        self.transfers = Transfers(self)
        self.prompts = PromptCache(settings.tts_dir or Path("tts"))
        self._flows: dict[str, tuple[int, Flow]] = {}  # name -> (file mtime, parsed flow)
        self.contacts = StoreContacts(store)
        self.dialplan = self._load_dialplan()
        self.distributor = CallDistributor(self, clock, self.events)
        # Engines sharing one store (and one recordings directory) each write under their own name.
        self.recorder = Recorder(store, media, settings.recordings_dir or Path("recordings"), clock,
                                 node=settings.node if store.shared else "")
        self.mailboxes = Mailboxes(store, settings.voicemail_dir or Path("voicemail"))
        # Wrong PINs across calls (voicemail *98, agent login *61) lock the caller and the target.
        self.pins = PinGuard(settings.pin_failures, settings.pin_window_s, settings.pin_lock_s, clock)
        # Message-waiting indication is technology-specific (SIP NOTIFY); the engine sets this.
        self.on_message_waiting: Callable[[str], None] = lambda mailbox: None
        self.features = FeatureCodes(media, schedule, self.prompts, self.distributor.roster, self.pins)
        self.supervision = Supervision(self, _DistributorAgents(self.distributor))
        self.features.register(self.supervision.handlers())
        self.surveys = PostCallSurvey(media, schedule, self.prompts, store, clock)
        self.voicemail = Voicemail(self.mailboxes, media, schedule, self.prompts, self.pins,
                                   lambda mailbox: self.on_message_waiting(mailbox))
        self.voicemail_calls = VoicemailOnCalls(self.voicemail, lambda mailbox: mailbox in self.dialplan.extensions)
        self.features.register(self.voicemail_calls.codes())
        # Services that act on what calls do learn of it from the bus (docs/ARCHITECTURE.md, "Event bus").
        self.events.subscribe(TransferAsked, self.transfers.asked)
        # Before the survey's SurveyDue handler: the recording stops before the survey speaks.
        self.recordings = CallRecordings(self, self.events)
        self.events.subscribe(SurveyDue, SurveyAfterAgent(self.surveys, self.calls).due)

    # -- configuration --------------------------------------------------------------------
    def _load_dialplan(self) -> Dialplan:
        return Dialplan(
            {e.number: e for e in self.store.extensions()},
            {t.name: t for t in self.store.trunks()},
            self.store.outbound_routes(),
            self.store.inbound_routes(),
            {q.number: q.name for q in acd_store.queues(self.store) if q.number},
        )

    def reload(self) -> None:
        """Take a new configuration snapshot; calls in progress keep the one they started with."""
        self.dialplan = self._load_dialplan()
        self.distributor.load()
        self.preload_flows()

    def start(self) -> None:
        """Engine start-up: agents back in their states, callbacks back in their queues, files left
        open by a killed engine repaired, and the daily retention job."""
        self.recorder.repair_open()
        self.distributor.start()
        self._retention()

    def _retention(self) -> None:
        try:
            self.recorder.purge()
        except Exception:  # a failed purge must not stop the next one
            log.exception("recording retention failed")
        self.schedule(RETENTION_INTERVAL_S, self._retention)

    @property
    def failure_tone_seconds(self) -> float:
        return self.settings.failure_tone_seconds

    def tone(self, kind: str) -> Any:
        from appliance.media.tones import tone

        return tone(self.settings.tone_country, kind)

    def moh_source(self) -> Any:
        if self.settings.moh_path is not None and self.settings.moh_path.exists():
            return str(self.settings.moh_path)
        return self.tone("ringback")

    # -- IVR ------------------------------------------------------------------------------
    def flow(self, name: str) -> Flow:
        """The published flow `name` (data/flows/<name>.yaml), validated; raises FlowError/OSError.

        Parsed once per version of the file, with its spoken prompts rendered then, so a caller
        never waits on YAML parsing or espeak-ng inside the SIP loop.
        """
        if self.settings.flows_dir is None:
            raise FlowError([f"no flows directory configured for {name!r}"])
        path = self.settings.flows_dir / f"{name}.yaml"
        stamp = path.stat().st_mtime_ns
        cached = self._flows.get(name)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        flow = load_flow_file(str(path))
        for node in flow.nodes.values():
            for attr in ("prompt", "invalid_prompt", "timeout_prompt"):
                prompt = getattr(node, attr, None)
                if prompt is not None and prompt.kind == "say":
                    try:
                        self.prompts.path_for(prompt.value)
                    except TtsError as exc:  # the call still runs; the session skips the prompt
                        log.error("flow %s, node %s: %s", name, node.id, exc)
        self._flows[name] = (stamp, flow)
        return flow

    def preload_flows(self) -> None:
        """Parse and render every published flow now (start-up, reload), not during a call."""
        if self.settings.flows_dir is None or not self.settings.flows_dir.is_dir():
            return
        for path in sorted(self.settings.flows_dir.glob("*.yaml")):
            if _KEPT_VERSION.search(path.stem):
                continue  # <name>.v<N>.yaml: a version the web editor kept, not a published flow
            try:
                self.flow(path.stem)
            except (FlowError, OSError) as exc:
                log.error("flow %s is not usable: %s", path.name, exc)

    def ivr_session(self, chan: Channel, flow: Flow, on_route: Any, on_hangup: Any,
                    on_sensitive: Callable[[bool], None] | None = None) -> IvrSession:
        sounds = self.settings.sounds_dir or Path(".")
        return IvrSession(chan, flow, self.media, self.schedule, self.prompts, sounds, on_route, on_hangup,
                          contacts=self.contacts, on_sensitive=on_sensitive)

    # -- calls ----------------------------------------------------------------------------
    def incoming(self, chan: Channel, dialed: str, caller_ext: Extension | None,
                 via_trunk: str | None = None) -> Call:
        """A channel arrived wanting `dialed`: start a call for it."""
        if caller_ext is not None:
            chan.extension = caller_ext.number
            self._index_device(chan)
        chan.trunk = via_trunk
        direction = "inbound" if via_trunk else "internal"
        call = self.call_factory.new_call(chan, dialed, direction, caller_ext, via_trunk)
        call.start(first_hop_did=via_trunk is not None)
        return call

    def call_ended(self, call: Call) -> None:
        self.calls.pop(call.id, None)

    def callback_refusal(self, number: str) -> str | None:
        """Why a queue may not call `number` back (None: it may).

        An extension always may; an outside number only through an outbound route named in the
        setting `acd.callback_routes` (comma-separated; none by default): the toll-fraud guard
        for calls the system places by itself."""
        dest = self.dialplan.resolve(number, self.callback_principal())
        if isinstance(dest, (ToExtension, ToTrunk)):
            return None
        if isinstance(dest, Refused) and dest.cause.code == 403:
            return f"{dest.why} (not in {CALLBACK_ROUTES_SETTING})"
        return "not a number the system can call"

    def call_back(self, agent_chan: Channel, number: str, agent_id: str, queue: QueueConfig) -> Call:
        """A queue callback: the agent's answered leg becomes the A side of a call to `number`."""
        call = self.call_factory.new_call(agent_chan, number, "outbound", principal=self.callback_principal())
        call.assign_agent(agent_id, queue, agent_chan, self.clock())
        call.start()
        return call

    # -- voicemail --------------------------------------------------------------------------------
    def voicemail_deposit(self, call: Call, mailbox: str) -> None:
        """The answered caller leaves a message for `mailbox` (voicemail_calls.py)."""
        self.voicemail_calls.deposit(call, mailbox)

    def device_reachable(self, number: str) -> bool:
        """The extension has a device that can ring now (a registered phone)."""
        return self.factory is not None and self.factory.reachable(number)

    def device_busy(self, number: str) -> bool:
        """The extension has a device in a call (ringing, talking): an agent there is not offered one.

        Channels are indexed by extension when they are made (weakly: an ended call's channels
        leave the index with the call), so this costs the extension's own channels, not all calls.
        """
        chans = self._device_channels.get(number)
        return chans is not None and any(not c.is_down for c in chans)

    def _index_device(self, chan: Channel) -> None:
        if chan.extension is not None:
            chans = self._device_channels.get(chan.extension)
            if chans is None:  # not setdefault: that builds a WeakSet for every dialled channel
                chans = self._device_channels[chan.extension] = weakref.WeakSet()
            chans.add(chan)

    def channels_for_extension(self, ext: Extension, caller: Party) -> list[Channel]:
        if self.factory is None:
            return []
        channels = self.factory.channels_for_extension(ext, caller)
        for chan in channels:
            chan.extension = ext.number
            self._index_device(chan)
        return channels

    def channel_for_trunk(self, dest: ToTrunk, caller: Party) -> Channel:
        if self.factory is None:
            raise PbxError(503, "no channel technology configured")
        chan = self.factory.channel_for_trunk(dest, caller)
        chan.trunk = dest.trunk.name
        return chan

    def media_destroy_bridge(self, bridge_id: str) -> None:
        try:
            self.media.destroy_bridge(bridge_id)
        except Exception as exc:  # noqa: BLE001 - the bridge may never have been created
            log.debug("destroy_bridge %s: %s", bridge_id, exc)

    def extension_of(self, chan: Channel) -> Extension | None:
        if chan.extension is None:
            return None
        return self.dialplan.extensions.get(chan.extension)

    def principal_of(self, chan: Channel) -> Principal:
        """Who a request arriving on `chan` (REFER, INVITE with Replaces) comes from.

        A trunk leg is the carrier's side, whatever the caller ID says: it transfers only where
        the site's `trunk.<name>.transfer` setting allows (default off)."""
        ext = self.extension_of(chan)
        if ext is not None and ext.enabled:
            return Principal.extension(ext)
        if chan.trunk is not None:
            return Principal.trunk(chan.trunk, self.store.get_setting(TRUNK_TRANSFER_SETTING.format(name=chan.trunk)))
        return Principal.unknown(f"{chan.technology} leg {chan.id}")

    def callback_principal(self) -> Principal:
        """A queue callback: extensions, and outside only through `acd.callback_routes`."""
        allowed = names(SETTINGS[CALLBACK_ROUTES_SETTING].text(self.store.get_setting(CALLBACK_ROUTES_SETTING)))
        return Principal.system("callback", frozenset(allowed))

    # -- lookups --------------------------------------------------------------------------
    def all_channels(self) -> list[Channel]:
        return self.calls.channels()

    def find_channel(self, channel_id: str) -> Channel:
        chan = self.calls.channel(channel_id)
        if chan is None:
            raise PbxError(404, f"no channel {channel_id}")
        return chan

    def find_channel_by_dialog(self, call_id: str) -> Channel | None:
        return self.calls.channel_by_dialog(call_id)

    # -- control API actions --------------------------------------------------------------------
    def hangup_channel(self, channel_id: str) -> None:
        chan = self.find_channel(channel_id)
        call = chan.owner
        if isinstance(call, Call) and chan in (call.a, call.b):
            call.hangup(chan)
        else:
            chan.hangup()

    def transfer_channel(self, channel_id: str, target: str) -> None:
        """Send the party on `channel_id` to `target`; its partner leaves the call."""
        chan = self.find_channel(channel_id)
        call = chan.owner
        if not isinstance(call, Call) or not chan.is_up:
            raise PbxError(409, f"channel {channel_id} is not in an answered call")
        partner = call.partner(chan)
        if partner is None or call.transfer is not None:
            raise PbxError(409, f"channel {channel_id} has nothing to transfer from")
        self.transfers.blind(call, partner, chan, target, notify=False)

    def originate(self, from_ext: str, to: str) -> Call:
        """Click-to-call: ring the extension's devices, then dial `to` once it answers."""
        ext = self.dialplan.extensions.get(from_ext)
        if ext is None or not ext.enabled:
            raise PbxError(404, f"no extension {from_ext}")
        # Refused before the extension rings: it would answer a call that cannot go anywhere.
        dest = self.dialplan.resolve(to, Principal.extension(ext))
        if isinstance(dest, Refused):
            raise PbxError(dest.cause.code if dest.cause.code in (403, 404) else 409, dest.why)
        channels = self.channels_for_extension(ext, Party(to, "Click-to-call"))
        if not channels:
            raise PbxError(409, f"extension {from_ext} has no registered device")
        return originate(self.call_factory, ext, channels, to)


class _DistributorAgents:
    """The distributor's agents as supervision asks about them (`supervision.AgentCalls`)."""

    def __init__(self, distributor: CallDistributor) -> None:
        self.distributor = distributor

    def is_agent(self, agent_id: str) -> bool:
        return agent_id in self.distributor.roster.agents

    def call_of(self, agent_id: str) -> Call | None:
        return self.distributor.agent_calls.get(agent_id)
