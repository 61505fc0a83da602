"""Voicemail, the service: sessions built from its ports, the lamp refreshed, the call ended.

On the session rig (tests/session_rig.py): a real MediaEngine leg, real espeak-ng prompts, real
WAV files and a real SQLite index, virtual time. Only ports are stand-ins: the rig's scheduler,
and the two callables the service is given (`message_waiting`, `hang_up`).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.ivr.tts import PromptCache
from appliance.pbx.channel import ChannelState
from appliance.pbx.pin_guard import PinGuard
from appliance.store.db import Store
from appliance.voicemail.mailbox import Mailboxes
from appliance.voicemail.service import Voicemail
from appliance.voicemail.session import DepositState, RetrievalState
from tests.session_rig import Rig

CALLER_FREQ = 440.0



@pytest.fixture
def boxes(tmp_path: Path) -> Iterator[Mailboxes]:
    store = Store(tmp_path / "vm.db")
    try:
        yield Mailboxes(store, tmp_path / "voicemail")
    finally:
        store.close()


@pytest.fixture
def rig() -> Iterator[Rig]:
    with Rig(send_silence=False) as r:
        r.chan.set_state(ChannelState.UP)  # the PBX answered the caller before voicemail
        yield r


class Calls:
    """What the service tells the outside world, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def lamp(self, mailbox: str) -> None:
        self.seen.append(("lamp", mailbox))

    def hang_up(self) -> None:
        self.seen.append(("hang_up", ""))


def _service(rig: Rig, boxes: Mailboxes, prompts: PromptCache, calls: Calls,
             pins: PinGuard | None = None) -> Voicemail:
    return Voicemail(boxes, rig.engine, rig.schedule, prompts, pins or PinGuard(), calls.lamp)


def test_a_deposit_stores_the_message_then_refreshes_the_lamp_then_hangs_up(
        rig: Rig, boxes: Mailboxes, prompts: PromptCache) -> None:
    calls = Calls()
    rig.session = _service(rig, boxes, prompts, calls).deposit(rig.chan, "1001", "call-1", calls.hang_up)
    rig.session.start()
    rig.key("#")  # skip the greeting
    rig.run_until(lambda: rig.session.state == DepositState.RECORDING)
    rig.run(1.5, talk=CALLER_FREQ)
    assert calls.seen == [] and boxes.counts("1001") == (0, 0)
    rig.key("#")
    assert calls.seen == [("lamp", "1001"), ("hang_up", "")]
    assert boxes.counts("1001") == (1, 0)
    msg = boxes.messages("1001")[0]
    assert msg.caller == "1002" and msg.path.is_file()


def test_a_caller_who_hangs_up_at_the_greeting_refreshes_the_lamp_but_is_not_hung_up(
        rig: Rig, boxes: Mailboxes, prompts: PromptCache) -> None:
    calls = Calls()
    rig.session = _service(rig, boxes, prompts, calls).deposit(rig.chan, "1001", "call-2", calls.hang_up)
    rig.session.start()
    rig.run(0.5)
    rig.chan.set_state(ChannelState.DOWN)
    rig.session.stop()
    assert calls.seen == [("lamp", "1001")] and boxes.counts("1001") == (0, 0)


def test_retrieval_of_the_own_mailbox_refreshes_its_lamp(rig: Rig, boxes: Mailboxes,
                                                         prompts: PromptCache) -> None:
    calls = Calls()
    rig.session = _service(rig, boxes, prompts, calls).retrieval(rig.chan, "1001", False, "ext:1001",
                                                                 calls.hang_up)
    rig.session.start()
    assert rig.session.state == RetrievalState.INTRO  # no PIN asked on the owner's phone
    rig.run_until(lambda: rig.session.state == RetrievalState.DONE)  # "You have no messages. Goodbye."
    assert calls.seen == [("lamp", "1001"), ("hang_up", "")]


def test_retrieval_counts_wrong_pins_on_the_services_guard_under_the_given_source(
        rig: Rig, boxes: Mailboxes, prompts: PromptCache) -> None:
    boxes.store.set_setting("voicemail.pin.1001", "2468")
    calls = Calls()
    guard = PinGuard(max_failures=1)
    rig.session = _service(rig, boxes, prompts, calls, guard).retrieval(rig.chan, "1001", True, "trunk:t1:555",
                                                                        calls.hang_up)
    rig.session.start()
    assert rig.session.state == RetrievalState.ASK_PIN
    for d in "1111#":
        rig.key(d)
    rig.run_until(lambda: rig.session.state == RetrievalState.DONE)
    assert {e.key for e in guard.lockouts()} == {"trunk:t1:555", "mailbox:1001"}
    assert calls.seen == [("hang_up", "")]  # nothing was opened: no lamp to refresh
