"""The ports of the PBX: what it uses of the outside world, as narrow typed protocols.

A service receives the ports it uses, never the whole switchboard (docs/ARCHITECTURE.md,
"Ports"). The engine hands in the real implementations (`MediaClient`, sippy's timer, the
store); unit tests hand in fakes of the port, never of the component under test.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

from appliance.ivr.contacts import ContactDirectory
from appliance.ivr.tts import PromptCache
from appliance.media.tones import ToneSpec
from appliance.pbx.channel import Channel, Party
from appliance.store.db import Store
from appliance.store.models import Extension, QueueConfig


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


# schedule(delay_s, fn) runs fn once in the engine loop after delay_s; the handle cancels it.
Scheduler = Callable[[float, Callable[[], None]], TimerHandle]


class MediaPort(Protocol):
    """The media engine as the PBX drives it (implemented by `appliance.media.client.MediaClient`).

    Legs are RTP endpoints or hardware ports, bridges mix legs, players and recorders attach to
    legs. Every call is a request to the media process; failures raise `MediaError`.
    """

    def create_leg(self, leg_id: str) -> int: ...

    def configure_leg(self, leg_id: str, remote: tuple[str, int] | None, codec: str, payload_type: int,
                      dtmf_payload_type: int | None, direction: str = "sendrecv",
                      detect_inband_dtmf: bool = False) -> None: ...

    def destroy_leg(self, leg_id: str) -> None: ...

    def bridge(self, bridge_id: str, leg_ids: list[str]) -> None: ...

    def unbridge(self, leg_id: str) -> None: ...

    def destroy_bridge(self, bridge_id: str) -> None: ...

    def play(self, leg_id: str, source: ToneSpec | str, loop: bool = True) -> str: ...

    def stop_play(self, leg_id: str) -> None: ...

    def record(self, target: str, path: str) -> str: ...

    def stop_record(self, rec_id: str) -> None: ...

    def record_parties(self, path: str, legs: list[str], stereo: bool) -> str: ...

    def record_set_party(self, rec_id: str, index: int, leg_id: str) -> None: ...

    def pause_record(self, rec_id: str) -> None: ...

    def resume_record(self, rec_id: str) -> None: ...

    def monitor(self, leg_id: str, hears: list[str], whisper_to: list[str]) -> None: ...

    def unmonitor(self, leg_id: str) -> None: ...

    def send_dtmf(self, leg_id: str, digit: str, duration_ms: int = 100) -> None: ...

    def detect_machine(self, leg_id: str, params: dict[str, Any] | None = None) -> None: ...

    def stop_detect_machine(self, leg_id: str) -> None: ...

    def leg_stats(self, leg_id: str) -> dict[str, Any]: ...

    def engine_stats(self) -> dict[str, Any]: ...


class QueueCall(Protocol):
    """A call as the distributor uses it (implemented by `appliance.pbx.call.Call`): a caller on
    the line who waits in a queue, is connected to an agent, or leaves for the queue's overflow.

    The distributor never builds a call (a queue callback's comes from `DistributorPbx.call_back`)
    and asks it to act only through these operations.
    """

    @property
    def id(self) -> str: ...

    @property
    def a(self) -> Channel: ...  # the caller's leg (the agent's, for a callback or a preview call)

    @property
    def direction(self) -> str: ...

    @property
    def dialed(self) -> str: ...

    @property
    def variables(self) -> dict[str, str]: ...

    @property
    def queue_config(self) -> QueueConfig | None: ...  # the queue whose agent took the call

    @property
    def agent_answered_at(self) -> float | None: ...

    @property
    def interaction_id(self) -> int | None: ...  # what the call is about

    def link_interaction(self, interaction_id: int | None) -> None: ...  # a queue opens or continues one

    # The caller's place while it waits (a `distributor.Waiting`, which this module cannot name
    # without importing the distributor), None once it no longer waits.
    def waiting_as(self, entry: Any) -> None: ...

    def connect_agent(self, chan: Channel, agent_id: str, queue: QueueConfig) -> None: ...

    def overflow(self, dest: str) -> None: ...

    def hangup(self, chan: Channel | None = None) -> None: ...


C_co = TypeVar("C_co", bound=QueueCall, covariant=True)


class SoundPaths(Protocol):
    @property
    def sounds_dir(self) -> Path | None: ...  # where a queue's own music on hold is


class DistributorSettings(SoundPaths, Protocol):
    @property
    def node(self) -> str: ...  # this engine's name on the site: who holds the agents it rings


class ExtensionDirectory(Protocol):
    @property
    def extensions(self) -> Mapping[str, Extension]: ...


class PromptingPbx(Protocol):
    """What a service that speaks to a party uses of the PBX: the store, timers, media and prompts
    (the part the distributor's and the dialer's ports share)."""

    @property
    def store(self) -> Store: ...

    @property
    def schedule(self) -> Scheduler: ...

    @property
    def media(self) -> MediaPort: ...

    @property
    def prompts(self) -> PromptCache: ...


class DistributorPbx(PromptingPbx, Protocol[C_co]):
    """What the distributor uses of the PBX (implemented by `appliance.pbx.switchboard.Switchboard`):
    the store, timers, media and prompts for waiting callers, agents' phones, and placing a
    queue callback. `C_co` is the PBX's call class."""

    @property
    def contacts(self) -> ContactDirectory: ...

    @property
    def settings(self) -> DistributorSettings: ...

    @property
    def dialplan(self) -> ExtensionDirectory: ...

    @property
    def calls(self) -> Mapping[str, object]: ...  # the live calls, by id

    def moh_source(self) -> ToneSpec | str: ...

    def device_busy(self, number: str) -> bool: ...

    def device_reachable(self, number: str) -> bool: ...

    def channels_for_extension(self, ext: Extension, caller: Party) -> list[Channel]: ...

    def callback_refusal(self, number: str) -> str | None: ...

    def call_back(self, agent_chan: Channel, number: str, agent_id: str, queue: QueueConfig) -> C_co: ...


class CdrSink(Protocol):
    """Where a call's detail record goes (implemented by `appliance.store.db.Store`)."""

    def cdr_open(self, call_id: str, caller: str, caller_name: str, callee: str, direction: str,
                 start: float, trunk: str | None = None) -> int: ...

    def cdr_answer(self, cdr_id: int, t: float) -> None: ...

    def cdr_close(self, cdr_id: int, end: float, disposition: str, hangup_cause: str | None) -> None: ...
