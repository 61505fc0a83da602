"""The outbound dialer's ports: what the dialer and its attempts use of the PBX, and of the calls
they place (docs/ARCHITECTURE.md, "Ports").

`Dialer` is given a `DialerPbx` (the engine hands it the `Switchboard`), never the switchboard
itself; an attempt drives its call only through `AttemptCall`'s operations (implemented by
`appliance.pbx.call.Call`), and the call is made by the PBX's call factory. Unit tests hand in
fakes of these ports (tests/pbx_ports.py).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from appliance.pbx.call import CallService
from appliance.pbx.channel import Cause, Channel, Party
from appliance.pbx.dialplan import ToTrunk
from appliance.pbx.distributor import CallDistributor
from appliance.pbx.permission import Principal
from appliance.pbx.ports import PromptingPbx
from appliance.store.models import Extension, Trunk


class AttemptCall(Protocol):
    """A call as a dialer attempt drives it: the customer's (or, in preview, the agent's) leg."""

    @property
    def id(self) -> str: ...

    @property
    def a(self) -> Channel: ...

    @property
    def variables(self) -> dict[str, str]: ...

    @property
    def agent_id(self) -> str | None: ...  # the agent who took it from the queue

    @property
    def cause(self) -> Cause: ...  # why it ended

    @property
    def queue_entry(self) -> object | None: ...  # its place while it waits in a queue

    def observe(self, on_answered: Callable[[AttemptCall], None] | None = None,
                on_agent_connected: Callable[[AttemptCall], None] | None = None,
                on_ended: Callable[[AttemptCall], None] | None = None) -> None: ...

    def attach_service(self, service: CallService | None) -> None: ...

    def adopt_answered(self) -> None: ...

    def wait_in_queue(self, name: str) -> bool: ...

    def leave_queue(self, event: str) -> bool: ...

    def hangup(self, chan: Channel | None = None) -> None: ...


class AttemptCalls(Protocol):
    """The PBX's call factory, as the dialer uses it: a call from an answered leg, listed as live."""

    def new_call(self, a: Channel, dialed: str, direction: str, caller_ext: Extension | None = None,
                 via_trunk: str | None = None, principal: Principal | None = None) -> AttemptCall: ...


class TrunkDirectory(Protocol):
    @property
    def trunks(self) -> Mapping[str, Trunk]: ...


class DialerPbx(PromptingPbx, Protocol):
    """What the dialer and its attempts use of the PBX (implemented by `Switchboard`): the store,
    timers, media and prompts for the called person, the distributor whose queue a campaign uses,
    agents' phones, the campaign's trunk, and the call factory."""

    @property
    def distributor(self) -> CallDistributor[Any]: ...

    @property
    def dialplan(self) -> TrunkDirectory: ...

    @property
    def call_factory(self) -> AttemptCalls: ...

    def device_busy(self, number: str) -> bool: ...

    def device_reachable(self, number: str) -> bool: ...

    def channel_for_trunk(self, dest: ToTrunk, caller: Party) -> Channel: ...
