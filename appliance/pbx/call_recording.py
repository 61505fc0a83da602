"""The recording policy of calls, as a service on the event bus (docs/ARCHITECTURE.md, "Event bus").

`Recorder` (recording.py) writes files and their index; this service decides when, from what
calls do, and never is called by `Call`:

- ``IvrEntered`` with a flow's ``record`` mode: the caller is recorded from the IVR on, the agent's
  slot silent until one answers;
- ``AgentConnected`` from a queue that records (or a call already recorded from its IVR): caller
  and agent, the agent's slot filled if the recording started earlier;
- ``CallAnswered`` by the callee where the caller's or callee's extension records "always";
- ``InCallCode`` *1 starts/stops an on-demand recording, *2 pauses it (card details), *3 resumes;
- ``SensitiveInput``: a sensitive IVR node pauses the recording, leaving it resumes it (PCI DSS);
- ``SurveyDue`` (the conversation is over: the survey is not recorded) and ``CallEnded`` stop it.

It keeps the active recording of each call by call id; the engine asks `active()` to continue
them in a new file after a media-process restart.
"""
from __future__ import annotations

from typing import Protocol

from appliance.pbx.bus import EventBus
from appliance.pbx.call import Call, CallState
from appliance.pbx.channel import Channel
from appliance.pbx.dialplan import Dialplan
from appliance.pbx.events import (
    AgentConnected,
    CallAnswered,
    CallEnded,
    InCallCode,
    IvrEntered,
    SensitiveInput,
    SurveyDue,
)
from appliance.pbx.recording import ActiveRecording, Recorder
from appliance.store.models import Extension


class RecordingContext(Protocol):
    """What the service uses of the PBX (implemented by the `Switchboard`)."""

    @property
    def recorder(self) -> Recorder: ...

    @property
    def calls(self) -> dict[str, Call]: ...

    @property
    def dialplan(self) -> Dialplan: ...

    def extension_of(self, chan: Channel) -> Extension | None: ...


class CallRecordings:
    """Starts, pauses and stops the recording of each call from the events on `bus`."""

    def __init__(self, pbx: RecordingContext, bus: EventBus) -> None:
        self.pbx = pbx
        self._active: dict[str, ActiveRecording] = {}  # call id -> its recording
        bus.subscribe(IvrEntered, self._ivr_entered)
        bus.subscribe(AgentConnected, self._agent_connected)
        bus.subscribe(CallAnswered, self._answered)
        bus.subscribe(InCallCode, self._in_call_code)
        bus.subscribe(SensitiveInput, self._sensitive)
        bus.subscribe(SurveyDue, lambda event: self._stop(event.call_id))
        bus.subscribe(CallEnded, lambda event: self._stop(event.call_id))

    def of(self, call_id: str) -> ActiveRecording | None:
        """The recording of call `call_id` under way, if any."""
        return self._active.get(call_id)

    def active(self) -> list[ActiveRecording]:
        """Every recording under way (a media restart continues each in a new file)."""
        return list(self._active.values())

    # -- events ---------------------------------------------------------------------------------
    def _ivr_entered(self, event: IvrEntered) -> None:
        call = self.pbx.calls.get(event.call_id)
        if call is None or event.record == "none" or event.call_id in self._active:
            return
        rec = self.pbx.recorder.start(call.a.dialog_key(), call.cdr_id, [call.a.media_leg, ""], event.record, "ivr")
        if rec is not None:
            self._active[call.id] = rec

    def _agent_connected(self, event: AgentConnected) -> None:
        """A waiting caller's agent answered (not a callback or a preview dial, where the agent is
        the A leg and nobody else is on the call yet)."""
        call = self.pbx.calls.get(event.call_id)
        if call is None or call.b is None or call.b.id != event.channel_id or call.queue_config is None:
            return
        queue = call.queue_config
        if queue.recording != "none" or call.id in self._active:
            self._record_parties(call, queue.recording if queue.recording != "none" else "stereo", "queue",
                                 queue.name, event.agent_id)

    def _answered(self, event: CallAnswered) -> None:
        """The callee answered (not the PBX itself): an extension that records always records."""
        call = self.pbx.calls.get(event.call_id)
        if call is None or call.b is None or call.b.id != event.channel_id:
            return
        callee_ext = self.pbx.extension_of(call.b)
        if any(e is not None and e.recording == "always" for e in (callee_ext, call.caller_ext)):
            self._record_parties(call, "stereo", "extension")

    def _in_call_code(self, event: InCallCode) -> None:
        call = self.pbx.calls.get(event.call_id)
        chan = next((c for c in (call.a, call.b) if c is not None and c.id == event.channel_id), None) \
            if call is not None else None
        if call is None or chan is None or chan.extension is None or call.state != CallState.UP:
            return
        rec = self._active.get(call.id)
        if event.code == "*1":
            ext = self.pbx.dialplan.extensions.get(chan.extension)
            if rec is not None:
                self._stop(call.id)
            elif ext is not None and ext.recording in ("on-demand", "always"):
                self._record_parties(call, "stereo", "on-demand", agent=call.agent_id or "")
        elif event.code in ("*2", "*3") and rec is not None:
            self.pbx.recorder.pause(rec, event.code == "*2", f"feature code from {chan.extension}")

    def _sensitive(self, event: SensitiveInput) -> None:
        rec = self._active.get(event.call_id)
        if rec is not None:
            self.pbx.recorder.pause(rec, event.active, "sensitive IVR node")

    # -- recordings -----------------------------------------------------------------------------
    def _record_parties(self, call: Call, mode: str, reason: str, queue: str = "", agent: str = "") -> None:
        """Record caller and callee/agent; a recording started earlier (IVR) gains its second party."""
        if call.b is None or mode not in ("mixed", "stereo"):
            return
        rec = self._active.get(call.id)
        if rec is None:
            rec = self.pbx.recorder.start(call.a.dialog_key(), call.cdr_id, [call.a.media_leg, call.b.media_leg],
                                          mode, reason, queue, agent)
            if rec is not None:
                self._active[call.id] = rec
        elif not rec.legs[1]:
            self.pbx.recorder.add_leg(rec, 1, call.b.media_leg, agent, queue)

    def _stop(self, call_id: str) -> None:
        rec = self._active.pop(call_id, None)
        if rec is not None:
            self.pbx.recorder.stop(rec)
