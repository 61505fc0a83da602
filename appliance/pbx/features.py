"""Feature codes: what a desk phone dials to talk to the PBX itself rather than to a person.

=============  =======================================================================
``*61[id]``     agent login on this phone: agent number (if not dialled) then PIN
``*62``         agent logout
``*63[code]``   pause, with an optional reason code (1 break, 2 lunch, 3 training...)
``*64``         unpause / ready (also ends wrap-up early)
=============  =======================================================================

The codes are the ones most call-centre PBXs use in some form (Asterisk's AgentLogin,
FreePBX's *45); the PIN is asked by voice, never dialled, so it stays out of CDRs and logs.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from appliance.ivr.tts import PromptCache
from appliance.pbx.pin_guard import PinGuard
from appliance.pbx.ports import MediaPort, Scheduler
from appliance.pbx.prompter import Prompter, spoken_digits
from appliance.pbx.roster import AgentError, AgentRoster
from appliance.schema.settings import PAUSE_REASONS

if TYPE_CHECKING:
    from appliance.pbx.call import Call

log = logging.getLogger("plateau.pbx")

LOGIN, LOGOUT, PAUSE, UNPAUSE = "*61", "*62", "*63", "*64"
_CODE_RE = re.compile(r"^(\*6[1-4])([0-9]{0,8})$")
PIN_TRIES = 3


class FeatureCodes:
    """Recognises feature codes and runs their dialogue on the caller's channel."""

    def __init__(self, media: MediaPort, schedule: Scheduler, prompts: PromptCache, roster: AgentRoster,
                 pins: PinGuard) -> None:
        self.media, self.schedule, self.prompts = media, schedule, prompts
        self.roster = roster
        self.pins = pins
        # prefix -> handler: other services' codes (voicemail *97/*98, supervision *70-*72), which
        # the switchboard registers with `register`.
        self.extra: dict[str, Callable[[Call, str], None]] = {}

    def register(self, handlers: dict[str, Callable[[Call, str], None]]) -> None:
        """Feature-code prefix -> handler(call, rest of the number) of another service."""
        self.extra.update(handlers)

    def handles(self, number: str) -> bool:
        return bool(_CODE_RE.match(number)) or any(number.startswith(p) for p in self.extra)

    def run(self, call: Call, number: str) -> None:
        """Answer and run the feature `number` for the extension that dialled it."""
        for prefix, handler in self.extra.items():
            if number.startswith(prefix):
                handler(call, number[len(prefix):])
                return
        m = _CODE_RE.match(number)
        if m is None:
            return
        call.answer_here()
        device = call.caller_ext.number if call.caller_ext is not None else None
        prompter = Prompter(call.a, self.media, self.schedule, self.prompts)
        call.attach_service(prompter)
        roster = self.roster

        def finish(text: str) -> None:
            prompter.say(text, lambda: call.hangup(call.a) if call.service is prompter else None)

        if device is None:
            finish("Feature codes work from the desk phones of this system only. Goodbye.")
            return
        code, arg = m.group(1), m.group(2)
        if code == LOGIN:
            self._login(prompter, device, arg, finish)
            return
        agent = roster.at_device(device)
        if agent is None:
            finish("No agent is logged in on this phone.")
            return
        try:
            if code == LOGOUT:
                roster.logout(agent.agent_id)
                finish(f"Agent {spoken_digits(agent.agent_id)} logged out. Goodbye.")
            elif code == PAUSE:
                roster.pause(agent.agent_id, arg)
                finish(f"Paused{', ' + PAUSE_REASONS[arg] if arg in PAUSE_REASONS else ''}.")
            else:
                roster.unpause(agent.agent_id)
                finish("Ready. Calls will now be offered to you.")
        except AgentError as exc:
            log.info("feature %s from %s refused: %s", code, device, exc)
            finish("That is not possible now.")

    def _login(self, prompter: Prompter, device: str, agent_id: str, finish: Callable[[str], None]) -> None:
        roster = self.roster

        def with_agent(agent: str, tries: int) -> None:
            if not agent:
                finish("Goodbye.")
                return
            prompter.ask("Please enter your PIN, then press hash.", 8, lambda pin: check(agent, pin, tries))

        guard = self.pins

        def check(agent: str, pin: str, tries: int) -> None:
            keys = [f"ext:{device}", f"agent:{agent}"]
            locked = guard.locked(keys)
            if locked is not None:  # the PIN is not even checked, right or wrong (pin_guard.py)
                guard.refuse(locked)
                finish("Too many incorrect PINs. Please try again later. Goodbye.")
                return
            try:
                roster.login(agent, pin, device)
            except AgentError as exc:
                log.info("agent login %s on %s refused: %s", agent, device, exc)
                if exc.status == 403 and guard.failed(keys, "agent login PIN"):
                    finish("Login incorrect. Too many incorrect PINs. Please try again later. Goodbye.")
                    return
                if exc.status == 403 and tries + 1 < PIN_TRIES:
                    prompter.say("Login incorrect.", lambda: ask_agent(tries + 1))
                else:
                    finish("Login incorrect. Goodbye." if exc.status == 403 else "That is not possible now.")
                return
            guard.succeeded(keys)
            finish(f"Agent {spoken_digits(agent)} logged in.")

        def ask_agent(tries: int) -> None:
            prompter.ask("Please enter your agent number, then press hash.", 8,
                         lambda digits: with_agent(digits, tries))

        if agent_id:
            with_agent(agent_id, 0)
        else:
            ask_agent(0)
