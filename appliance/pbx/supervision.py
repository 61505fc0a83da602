"""Supervision of an agent's call: listen, whisper and barge (Asterisk ChanSpy's convention).

=============  =======================================================================
``*70[id]``     listen to agent ``id``: the supervisor hears caller and agent, nobody hears it
``*71[id]``     whisper: the agent hears the supervisor too, the caller does not
``*72[id]``     barge: a three-way call, everybody hears everybody
=============  =======================================================================

While supervising, the supervisor switches mode with the keypad: 4 listen, 5 whisper, 6 barge
(ChanSpy's ``d`` option). Only the desk phones listed in the setting ``acd.supervisors``
(comma-separated extension numbers) may dial these codes; the control API
(``POST /v1/agents/<id>/monitor``) rings a supervisor's phone and starts the session on answer.

Media: listen and whisper are ``media.monitor`` of the supervisor's leg (it leaves any bridge),
barge is ``media.bridge`` into the call's bridge (which ends the monitor). The target call is
watched on the event bus (docs/ARCHITECTURE.md, "Event bus"): when it ends (``CallEnded``), its
agent is released (``AgentReleased``: hung up, transferred, the survey) or a party leaves or is
replaced (``PartiesChanged``: a transfer), the supervisor is told and released.
"""
from __future__ import annotations

import enum
import logging
import weakref
from collections import defaultdict
from collections.abc import Callable
from typing import Protocol

from appliance.ivr.tts import PromptCache
from appliance.media.protocol import MediaError
from appliance.pbx.bus import EventBus
from appliance.pbx.call import Call, CallState
from appliance.pbx.call_factory import CallFactory
from appliance.pbx.channel import Channel, DtmfReceived, Party, PlaybackEnded
from appliance.pbx.dialplan import Dialplan
from appliance.pbx.ports import MediaPort, Scheduler
from appliance.pbx.errors import PbxError
from appliance.pbx.events import AgentReleased, CallEnded, PartiesChanged
from appliance.pbx.originate import originate
from appliance.pbx.prompter import Prompter, spoken_digits
from appliance.schema.settings import SETTINGS, SUPERVISORS_SETTING, supervisors
from appliance.store.models import Extension
from appliance.store.validation import AGENT_ID_RE

log = logging.getLogger("plateau.pbx")


class SettingsReader(Protocol):
    def get_setting(self, key: str) -> str | None: ...


class AgentCalls(Protocol):
    """The ACD's agents as supervision asks about them (the switchboard adapts the distributor)."""

    def is_agent(self, agent_id: str) -> bool: ...

    def call_of(self, agent_id: str) -> Call | None:
        """The call agent `agent_id` is on, if any."""


class SupervisionContext(Protocol):
    """What supervision uses of the PBX (implemented by the `Switchboard`)."""

    @property
    def media(self) -> MediaPort: ...

    @property
    def schedule(self) -> Scheduler: ...

    @property
    def prompts(self) -> PromptCache: ...

    @property
    def store(self) -> SettingsReader: ...

    @property
    def dialplan(self) -> Dialplan: ...

    @property
    def call_factory(self) -> CallFactory: ...

    @property
    def events(self) -> EventBus: ...

    def channels_for_extension(self, ext: Extension, caller: Party) -> list[Channel]: ...


class Mode(enum.Enum):
    LISTEN = "listen"
    WHISPER = "whisper"
    BARGE = "barge"


PREFIXES = {"*70": Mode.LISTEN, "*71": Mode.WHISPER, "*72": Mode.BARGE}
CODE_OF = {mode: prefix for prefix, mode in PREFIXES.items()}
KEYS = {"4": Mode.LISTEN, "5": Mode.WHISPER, "6": Mode.BARGE}  # ChanSpy's mode keys


class SessionState(enum.Enum):
    SUPERVISING = "supervising"
    CLOSING = "closing"  # the watched call is gone: the supervisor hears why, then is released
    STOPPED = "stopped"


_ALLOWED = {
    SessionState.SUPERVISING: {SessionState.CLOSING, SessionState.STOPPED},
    SessionState.CLOSING: {SessionState.STOPPED},
    SessionState.STOPPED: set(),
}


def agent_legs(call: Call) -> tuple[Channel, Channel] | None:
    """(caller, agent) of an agent's call while both are connected, else None.

    The agent is ``call.agent_leg`` whichever side it is on (a queue call has the caller as A,
    a callback has the agent as A); the caller is its partner.
    """
    agent = call.agent_leg
    if call.state is not CallState.UP or agent is None or call.agent_id is None:
        return None
    caller = call.partner(agent)
    if caller is None or agent.is_down or caller.is_down:
        return None
    return caller, agent


class SupervisionSession:
    """One supervisor's session on one agent's call; the `CallService` of the supervisor's call."""

    def __init__(self, pbx: SupervisionContext, sup_call: Call, target: Call, agent_id: str,
                 caller: Channel, agent: Channel, unwatch: Callable[[], None] = lambda: None) -> None:
        self.pbx = pbx
        self.sup_call = sup_call
        self.sup = sup_call.a
        self.target = target
        self.agent_id = agent_id
        self.caller = caller
        self.agent = agent
        self.mode: Mode | None = None
        self.state = SessionState.SUPERVISING
        self.unwatch = unwatch  # the session no longer hears of the target's events
        self.prompter: Prompter | None = None

    def _to(self, new: SessionState) -> None:
        if new not in _ALLOWED[self.state]:
            raise RuntimeError(f"supervision of {self.target.id}: illegal transition "
                               f"{self.state.value} -> {new.value}")
        self.state = new

    def start(self, mode: Mode) -> None:
        """Join the call in `mode` (`Supervision` passes on the target's events: `target_changed`)."""
        self.set_mode(mode)

    def set_mode(self, mode: Mode) -> None:
        """Listen, whisper or barge from now on (the later of monitor/bridge wins in the engine)."""
        if self.state is not SessionState.SUPERVISING or mode is self.mode:
            return
        media = self.pbx.media
        legs = [self.caller.media_leg, self.agent.media_leg]
        try:
            if mode is Mode.BARGE:
                media.bridge(self.target.bridge_id, [self.sup.media_leg])
                self.sup.bridge_id = self.target.bridge_id
            else:
                media.monitor(self.sup.media_leg, legs, [self.agent.media_leg] if mode is Mode.WHISPER else [])
                self.sup.bridge_id = None
        except MediaError as exc:  # a leg went away under us: the call is ending
            log.info("%s: supervision of %s cannot %s: %s", self.sup_call.id, self.target.id, mode.value, exc)
            self._target_gone()
            return
        log.info("%s: %s %s agent %s on %s", self.sup_call.id, self.sup.extension or self.sup.id,
                 {"listen": "listens to", "whisper": "whispers to", "barge": "barges in on"}[mode.value],
                 self.agent_id, self.target.id, extra={"CALL_ID": self.target.id})
        self.mode = mode

    def handle(self, event: DtmfReceived | PlaybackEnded) -> None:
        """The supervisor's keys switch modes; prompt ends go to the closing announcement."""
        if isinstance(event, PlaybackEnded):
            if self.prompter is not None:
                self.prompter.handle(event)
            return
        if self.state is SessionState.SUPERVISING and event.digit in KEYS:
            self.set_mode(KEYS[event.digit])

    def stop(self) -> None:
        """The supervisor hung up (or the PBX took the call back): leave caller and agent talking."""
        if self.state is SessionState.STOPPED:
            return
        self._to(SessionState.STOPPED)
        self.unwatch()
        if self.prompter is not None:
            self.prompter.stop()
        self._leave_call()

    # -- watching the target ---------------------------------------------------------------
    def _still_on(self) -> bool:
        """The call still joins the same caller and agent (not ended, not transferred away)."""
        legs = agent_legs(self.target)
        return legs is not None and legs == (self.caller, self.agent) and self.target.agent_id == self.agent_id

    def target_changed(self) -> None:
        """The target ended, lost its agent or changed a party: still the same conversation?"""
        if self.state is SessionState.SUPERVISING and not self._still_on():
            self._target_gone()

    def _target_gone(self) -> None:
        if self.state is not SessionState.SUPERVISING:
            return
        log.info("%s: the call of agent %s (%s) ended under supervision", self.sup_call.id, self.agent_id,
                 self.target.id, extra={"CALL_ID": self.target.id})
        self._to(SessionState.CLOSING)
        self.unwatch()
        self._leave_call()
        if self.sup.is_down:
            return
        self.prompter = Prompter(self.sup, self.pbx.media, self.pbx.schedule, self.pbx.prompts)
        self.prompter.say("The call has ended. Goodbye.", self._release)

    def _release(self) -> None:
        if self.state is SessionState.CLOSING and self.sup_call.service is self and not self.sup.is_down:
            self.sup_call.hangup(self.sup)

    def _leave_call(self) -> None:
        """Undo what this session did to the media, so only the supervisor's leg is affected.

        A destroyed supervisor leg needs nothing (the engine drops its monitor and bridge place);
        a barge into a bridge that ended with the call needs nothing either.
        """
        mode, self.mode = self.mode, None
        self.sup.bridge_id = None
        if mode is None or self.sup.is_down:
            return
        try:
            if mode is Mode.BARGE:
                if self.target.state is not CallState.ENDED:
                    self.pbx.media.unbridge(self.sup.media_leg)
            else:
                self.pbx.media.unmonitor(self.sup.media_leg)
        except MediaError as exc:
            log.debug("%s: leaving %s: %s", self.sup_call.id, self.target.id, exc)


class Supervision:
    """The supervision feature codes and the control API's monitor request for one switchboard."""

    def __init__(self, pbx: SupervisionContext, agents: AgentCalls) -> None:
        self.pbx = pbx
        self.agents = agents
        # Calls the control API placed to a supervisor's phone: the API's token already
        # authorised them, so the desk-phone list does not apply.
        self._from_api: weakref.WeakSet[Call] = weakref.WeakSet()
        self._watching: defaultdict[str, list[SupervisionSession]] = defaultdict(list)  # by target call id
        pbx.events.subscribe(CallEnded, self._target_event)
        pbx.events.subscribe(AgentReleased, self._target_event)
        pbx.events.subscribe(PartiesChanged, self._target_event)

    def _target_event(self, event: CallEnded | AgentReleased | PartiesChanged) -> None:
        for session in list(self._watching.get(event.call_id, ())):
            session.target_changed()

    def _watch(self, session: SupervisionSession) -> Callable[[], None]:
        sessions = self._watching[session.target.id]
        sessions.append(session)

        def unwatch() -> None:
            if session in sessions:
                sessions.remove(session)
            if not sessions:
                self._watching.pop(session.target.id, None)
        return unwatch

    def sessions(self) -> list[dict[str, object]]:
        """Who supervises whom: each live session's agent, watched call, supervisor and mode."""
        found: list[dict[str, object]] = []
        for target_id, sessions in sorted(self._watching.items()):
            for session in sessions:
                if session.state is not SessionState.SUPERVISING or session.mode is None:
                    continue
                ext = session.sup_call.caller_ext
                found.append({"agent": session.agent_id, "call": target_id, "mode": session.mode.value,
                              "supervisor": ext.number if ext is not None else session.sup.caller.number,
                              "supervisor_call": session.sup_call.id})
        return found

    def handlers(self) -> dict[str, Callable[[Call, str], None]]:
        """Feature-code prefix -> handler, for `FeatureCodes.extra`."""
        return {prefix: self._handler(mode) for prefix, mode in PREFIXES.items()}

    def _handler(self, mode: Mode) -> Callable[[Call, str], None]:
        def run(call: Call, rest: str) -> None:
            self.dialled(call, rest, mode)

        return run

    def may_supervise(self, extension: str | None) -> bool:
        """Whether the desk phone of `extension` is listed in ``acd.supervisors``."""
        raw = self.pbx.store.get_setting(SUPERVISORS_SETTING)
        return extension is not None and extension in supervisors(SETTINGS[SUPERVISORS_SETTING].text(raw))

    def dialled(self, call: Call, agent_id: str, mode: Mode) -> None:
        """A phone dialled ``*70``-``*72`` (`agent_id` may be empty: it is asked for)."""
        call.answer_here()
        prompter = Prompter(call.a, self.pbx.media, self.pbx.schedule, self.pbx.prompts)
        call.attach_service(prompter)
        device = call.caller_ext.number if call.caller_ext is not None else None

        def finish(text: str) -> None:
            prompter.say(text, lambda: call.hangup(call.a) if call.service is prompter else None)

        if call not in self._from_api and not self.may_supervise(device):
            log.warning("%s: %s dialled %s%s but is not in %s: refused", call.id, device or call.a.caller.number,
                        CODE_OF[mode], agent_id, SUPERVISORS_SETTING, extra={"CALL_ID": call.id})
            finish("Supervision is not allowed from this phone. Goodbye.")
            return
        self._from_api.discard(call)

        def with_agent(digits: str) -> None:
            if not AGENT_ID_RE.match(digits) or not self.agents.is_agent(digits):
                finish("There is no such agent. Goodbye.")
                return
            target = self.agents.call_of(digits)
            legs = agent_legs(target) if target is not None else None
            if target is None or legs is None:
                finish(f"Agent {spoken_digits(digits)} is not on a call. Goodbye.")
                return
            prompter.stop()
            session = SupervisionSession(self.pbx, call, target, digits, *legs)
            session.unwatch = self._watch(session)
            call.attach_service(session)
            session.start(mode)

        if agent_id:
            with_agent(agent_id)
        else:
            prompter.ask("Please enter the agent number, then press hash.", 8, with_agent)

    def originate(self, agent_id: str, device: str, mode: str) -> Call:
        """Control API: ring `device`'s phones; on answer it supervises `agent_id` in `mode`.

        Raises PbxError: 400 bad mode or device, 404 unknown agent, 409 agent not on a call or
        no registered phone on `device`.
        """
        try:
            wanted = Mode(mode)
        except ValueError:
            raise PbxError(400, f"mode must be one of {', '.join(m.value for m in Mode)}, not {mode!r}") from None
        if not self.agents.is_agent(agent_id):
            raise PbxError(404, f"no agent {agent_id}")
        target = self.agents.call_of(agent_id)
        if target is None or agent_legs(target) is None:
            raise PbxError(409, f"agent {agent_id} is not on a call")
        ext = self.pbx.dialplan.extensions.get(device)
        if ext is None or not ext.enabled:
            raise PbxError(400, f"device {device!r} is not an extension")
        code = CODE_OF[wanted] + agent_id
        channels = self.pbx.channels_for_extension(ext, Party(code, f"Supervise agent {agent_id}"))
        if not channels:
            raise PbxError(409, f"extension {device} has no registered phone")
        call = originate(self.pbx.call_factory, ext, channels, code)
        self._from_api.add(call)
        log.info("%s: control API rings %s to %s agent %s", call.id, device, wanted.value, agent_id)
        return call
