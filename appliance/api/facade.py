"""What the control API needs from the running engine, and the error it may raise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from appliance.schema.errors import FieldError, RecordInvalid

JsonValue = Any  # a dict/list/str/number/bool/None that json.dumps accepts


class ApiError(Exception):
    """A client error with its HTTP status (404 unknown channel, 400 bad body...).

    `errors` are the field errors of a refused record, as data: the answer carries them
    (``{"error": ..., "errors": [{"loc": [...], "msg": ...}]}``) so a form can put each beside
    its field without reading the message.
    """

    def __init__(self, status: int, message: str, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.errors = tuple(errors)

    @classmethod
    def refused(cls, exc: ValueError) -> ApiError:
        """A 400 for a record the store refused: its message, and its FieldErrors when it has them."""
        return cls(400, str(exc), exc.errors if isinstance(exc, RecordInvalid) else ())


class ApiUnavailable(ApiError):
    """The engine's control API could not be reached (client side only; status 0)."""

    def __init__(self, message: str) -> None:
        super().__init__(0, message)


class EngineFacade(Protocol):
    """The running engine as the control API sees it; every method returns JSON-able data.

    Methods are called in the engine's event-loop thread (through ``call_in_loop``)
    and raise ApiError for client errors; ``headset_action`` alone is called in the API
    thread (it waits for a headset's process and must not stall the loop).
    """

    def status(self) -> dict[str, JsonValue]:
        """Engine state: version, uptime, counts of calls/registrations..."""
        ...

    def registrations(self) -> list[dict[str, JsonValue]]:
        """Current contact bindings."""
        ...

    def channels(self) -> list[dict[str, JsonValue]]:
        """Live call legs."""
        ...

    def bridges(self) -> list[dict[str, JsonValue]]:
        """Live bridges of the media engine."""
        ...

    def calls(self) -> list[dict[str, JsonValue]]:
        """Live calls (channels grouped by call)."""
        ...

    def hardware(self) -> dict[str, JsonValue]:
        """Line boards: link state, counters, and each port's state, line figures and alarms."""
        ...

    def blocked(self) -> list[dict[str, JsonValue]]:
        """Source addresses currently blocked after auth failures."""
        ...

    def unblock(self, address: str) -> dict[str, JsonValue]:
        """Lift a block; ApiError(404) when the address is not blocked."""
        ...

    def originate(self, from_ext: str, to: str, caller_id: str | None) -> dict[str, JsonValue]:
        """Ring extension ``from_ext`` and, when answered, call ``to``."""
        ...

    def reload(self) -> dict[str, JsonValue]:
        """Re-read the configuration from the store; calls in progress are kept."""
        ...

    def hangup(self, channel_id: str) -> dict[str, JsonValue]:
        """Hang a channel up; ApiError(404) when unknown."""
        ...

    def transfer(self, channel_id: str, to: str) -> dict[str, JsonValue]:
        """Blind-transfer the peer of a channel to ``to``."""
        ...

    def agents(self) -> list[dict[str, JsonValue]]:
        """ACD agents: state, pause reason, device, time in state."""
        ...

    def agent_action(self, agent_id: str, action: str, device: str | None, reason: str | None) -> dict[str, JsonValue]:
        """login (on ``device``), logout, pause (``reason``) or unpause an agent."""
        ...

    def queues(self) -> list[dict[str, JsonValue]]:
        """ACD queues: waiting callers with position and wait, agents per state."""
        ...

    def monitor(self, agent_id: str, device: str, mode: str) -> dict[str, JsonValue]:
        """Ring supervisor extension ``device``; on answer it supervises the agent's call in
        ``mode`` (listen, whisper, barge). ApiError 400 bad mode, 404 unknown agent, 409 agent
        not on a call or no registered phone on ``device``."""
        ...

    def monitors(self) -> list[dict[str, JsonValue]]:
        """Supervision sessions on this node: the agent watched, their call, the supervisor's
        extension and the mode (listen, whisper, barge)."""
        ...

    def queue_kpis(self, name: str) -> dict[str, JsonValue]:
        """Today's figures of a queue: service level, ASA, AHT, abandon rate... and survey scores."""
        ...

    def interaction(self, interaction_id: str) -> dict[str, JsonValue]:
        """One interaction: contact, caller, queue, agent, status, disposition, notes, IVR path."""
        ...

    def headsets(self) -> list[dict[str, JsonValue]]:
        """USB headsets: extension, process state and pid, restarts, registered, call state, peer."""
        ...

    def headset_action(self, extension: str, action: str) -> dict[str, JsonValue]:
        """answer or hangup on the headset of ``extension``. ApiError 404 no such headset, 409 the
        call state does not allow it, 503 its process is not up, 504 it did not answer in time."""
        ...

    def update_interaction(self, interaction_id: str, status: str | None, disposition: str | None,
                           notes: str | None) -> dict[str, JsonValue]:
        """The agent's wrap-up: status (open/resolved/closed/follow-up), disposition code, notes."""
        ...

    # -- outbound dialer -------------------------------------------------------------------
    def campaigns(self) -> list[dict[str, JsonValue]]:
        """Campaigns with live figures: name, state, mode, queue, agents_free, agents_busy, in_flight,
        placed/answered/abandoned_today, answer_rate, abandon_rate (over the campaign's window),
        abandon_cap, dial_rate_per_min, last_decision (the pacer's latest)."""
        ...

    def campaign_action(self, name: str, action: str) -> dict[str, JsonValue]:
        """start or pause a campaign (its status after the change); ApiError 404 unknown campaign."""
        ...

    def agent_lead(self, agent_id: str) -> dict[str, JsonValue]:
        """{lead: {id, number, fields, campaign, attempts}, script, dispositions} of the agent's
        campaign call (current, or last not yet dispositioned); ApiError 404 when none."""
        ...

    def lead_disposition(self, lead_id: str, code: str, callback_at: float | str | None,
                         agent: str | None) -> dict[str, JsonValue]:
        """The agent's disposition of a lead; ``callback_at`` (epoch or ISO 8601) schedules a
        callback. ApiError 400 unknown code or past time, 404 unknown lead."""
        ...

    def add_dnc(self, number: str, note: str | None, campaign: str | None) -> dict[str, JsonValue]:
        """Put a number on the do-not-call list, normalised in the campaign's or the site's country
        ({number: E.164, added}); ApiError 400 when it is not a number."""
        ...

    def agent_preview(self, agent_id: str) -> dict[str, JsonValue]:
        """Reserve and show the next lead of the agent's preview campaigns (same shape as
        ``agent_lead``); ApiError 404 when there is none."""
        ...

    def agent_preview_action(self, agent_id: str, action: str) -> dict[str, JsonValue]:
        """dial (the agent's phone rings, then the lead) or skip the reserved lead; ApiError 409
        with the compliance reason when the lead may not be dialled now (nothing is dialled)."""
        ...
