"""The ports of a call: what `Call` (call.py) uses of the PBX around it, as typed protocols.

The `Switchboard` implements `CallContext`; unit tests give a real switchboard fake media, a fake
scheduler and fake channels (tests/pbx_rig.py). The protocols are generic in the call type so that
this module need not import call.py (no import cycle, docs/ARCHITECTURE.md, "Ports").
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

from appliance.ivr.flow import RouteTarget
from appliance.pbx.bus import EventBus
from appliance.pbx.channel import Channel, DtmfReceived, Party, PlaybackEnded
from appliance.pbx.dialplan import Dialplan, ToTrunk
from appliance.pbx.fork import Fork
from appliance.pbx.ports import CdrSink, MediaPort, Scheduler
from appliance.store.models import Extension

if TYPE_CHECKING:
    from appliance.ivr.flow import Flow
    from appliance.ivr.session import IvrSession
    from appliance.media.tones import ToneSpec

C_contra = TypeVar("C_contra", contravariant=True)


class CallService(Protocol):
    """Something the PBX runs on the caller's channel (see `Call.service`)."""

    def handle(self, event: DtmfReceived | PlaybackEnded) -> None: ...

    def stop(self) -> None: ...


class CallTransfer(Protocol):
    """A transfer running on a call (transfer.py's `BlindTransfer`): what the call tells it."""

    fork: Fork | None
    transferor: Channel

    def transferor_left(self) -> None: ...

    def abandon(self) -> None: ...


class CallQueues(Protocol[C_contra]):
    """The ACD as a call uses it (implemented by `appliance.pbx.distributor.CallDistributor`)."""

    def enqueue(self, call: C_contra, queue_name: str) -> str | None: ...

    def withdraw(self, call: C_contra, event: str) -> bool: ...

    def caller_left(self, call: C_contra) -> None: ...

    def caller_event(self, call: C_contra, event: DtmfReceived | PlaybackEnded) -> None: ...

    def agent_call_ended(self, call: C_contra, agent_id: str, how: str) -> None: ...


class FeatureDialogues(Protocol[C_contra]):
    """Feature codes a phone dials to talk to the PBX itself (features.py's `FeatureCodes`)."""

    def handles(self, number: str) -> bool: ...

    def run(self, call: C_contra, number: str) -> None: ...


class DestinationRouter(Protocol[C_contra]):
    """The destination registry (destinations.py): takes a call to a destination of any kind."""

    def route(self, call: C_contra, dest: object, hops: int) -> None: ...


class CallContext(Protocol[C_contra]):
    """Everything a call uses of the PBX around it (implemented by the `Switchboard`): its ports
    (media, scheduler, clock, CDR sink), the configuration snapshot, and the services it hands
    the caller to. A call is given this, never the switchboard's other members."""

    @property
    def media(self) -> MediaPort: ...

    @property
    def schedule(self) -> Scheduler: ...

    @property
    def store(self) -> CdrSink: ...

    @property
    def dialplan(self) -> Dialplan: ...

    @property
    def distributor(self) -> CallQueues[C_contra]: ...

    @property
    def features(self) -> FeatureDialogues[C_contra]: ...

    @property
    def events(self) -> EventBus: ...

    @property
    def destinations(self) -> DestinationRouter[C_contra]: ...

    @property
    def failure_tone_seconds(self) -> float: ...

    def clock(self) -> float: ...

    def tone(self, kind: str) -> ToneSpec: ...

    def moh_source(self) -> ToneSpec | str: ...

    def flow(self, name: str) -> Flow: ...

    def ivr_session(self, chan: Channel, flow: Flow, on_route: Callable[[RouteTarget, dict[str, str]], None],
                    on_hangup: Callable[[], None],
                    on_sensitive: Callable[[bool], None] | None = None) -> IvrSession: ...

    def channels_for_extension(self, ext: Extension, caller: Party) -> list[Channel]: ...

    def channel_for_trunk(self, dest: ToTrunk, caller: Party) -> Channel: ...

    def extension_of(self, chan: Channel) -> Extension | None: ...

    def media_destroy_bridge(self, bridge_id: str) -> None: ...

    def voicemail_deposit(self, call: C_contra, mailbox: str) -> None: ...

    def call_ended(self, call: C_contra) -> None: ...
