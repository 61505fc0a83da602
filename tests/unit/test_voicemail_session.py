"""Voicemail drivers on the real media engine, in process, on virtual time.

The caller is an RTP peer feeding the leg a tone; what the caller hears is decoded from the
packets the leg sends. Prompts are real espeak-ng renderings; messages are real WAV files
written by the engine's recorder.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from appliance.ivr.tts import PromptCache
from appliance.media.engine import MediaEngine
from appliance.store.db import Store
from appliance.pbx.pin_guard import PinGuard
from appliance.voicemail.mailbox import Mailboxes
from appliance.voicemail.session import (
    DepositSession,
    DepositState,
    RetrievalSession,
    RetrievalState,
    intro_text,
)
from tests.audio import read_wav, tone_ratio, write_tone_wav
from tests.session_rig import Rig, power_share
from tests.unit.test_voicemail_mailbox import voicemail_store

CALLER_FREQ = 440.0



@pytest.fixture
def boxes(tmp_path: Path) -> Iterator[Mailboxes]:
    store: Store = voicemail_store(tmp_path / "vm.db")
    try:
        yield Mailboxes(store, tmp_path / "voicemail")
    finally:
        store.close()


@pytest.fixture
def rig() -> Iterator[Rig]:
    # The caller sends RTP only while talking: no silence packets in between.
    with Rig(send_silence=False) as r:
        yield r


def deposit(rig: Rig, boxes: Mailboxes, prompts: PromptCache, media: Any = None,
            max_seconds: float = 120.0) -> list[int | None]:
    done: list[int | None] = []
    rig.session = DepositSession(rig.chan, "1001", boxes, media or rig.engine, rig.schedule, prompts,
                                 done.append, max_seconds=max_seconds)
    rig.session.start()
    return done


# -- deposit ------------------------------------------------------------------------------------
def test_deposit_greeting_beep_record_until_pound(rig: Rig, boxes: Mailboxes, prompts: PromptCache) -> None:
    done = deposit(rig, boxes, prompts)
    greeting = rig.run_until(lambda: rig.session.state == DepositState.BEEP)
    assert greeting > 3.0  # the spoken default greeting was played to its end
    mark = len(rig.heard)
    rig.run_until(lambda: rig.session.state == DepositState.RECORDING)
    beep = rig.heard_pcm(mark)
    assert power_share(beep, 1000.0) > 0.8 and beep.size == pytest.approx(0.5 * 8000, abs=400)
    rig.run(2.0, talk=CALLER_FREQ)
    rig.key("#")
    assert rig.session.state == DepositState.DONE
    assert len(done) == 1 and done[0] is not None
    msg = boxes.message(done[0])
    assert msg is not None and msg.caller == "1002" and msg.caller_name == "Bob" and not msg.heard
    assert msg.duration_s == pytest.approx(2.0, abs=0.15)
    rate, pcm = read_wav(msg.path)
    assert rate == 16000
    assert tone_ratio(pcm, rate, CALLER_FREQ) > 0.8  # the caller's voice, not the beep or a prompt
    assert boxes.counts("1001") == (1, 0)


def test_deposit_plays_the_recorded_greeting_and_pound_skips_it(rig: Rig, boxes: Mailboxes,
                                                                 prompts: PromptCache) -> None:
    boxes.directory("1001").mkdir(parents=True)
    write_tone_wav(boxes.directory("1001") / "greeting.wav", 600, 10.0)
    deposit(rig, boxes, prompts)
    rig.run(1.0)
    assert power_share(rig.heard_pcm(), 600.0) > 0.8
    rig.key("#")  # a caller who knows the greeting skips it
    assert rig.session.state == DepositState.BEEP
    rig.run_until(lambda: rig.session.state == DepositState.RECORDING, limit=0.6)


def test_caller_hanging_up_mid_message_keeps_it(rig: Rig, boxes: Mailboxes, prompts: PromptCache) -> None:
    done = deposit(rig, boxes, prompts)
    rig.key("#")
    rig.run_until(lambda: rig.session.state == DepositState.RECORDING)
    rig.run(1.5, talk=CALLER_FREQ)
    rig.session.stop()  # the BYE
    rig.session.stop()  # and the call's own teardown: on_done still once
    assert len(done) == 1 and done[0] is not None
    assert boxes.counts("1001") == (1, 0)
    msg = boxes.message(done[0])
    assert msg is not None and msg.path.is_file() and msg.duration_s == pytest.approx(1.5, abs=0.15)


def test_hang_up_at_the_beep_leaves_nothing(rig: Rig, boxes: Mailboxes, prompts: PromptCache) -> None:
    done = deposit(rig, boxes, prompts)
    rig.key("#")
    rig.run_until(lambda: rig.session.state == DepositState.RECORDING)
    rig.run(0.4, talk=CALLER_FREQ)
    rig.session.stop()
    assert done == [None]
    assert boxes.messages("1001") == []
    assert list(boxes.directory("1001").glob("*.wav")) == []  # the short file is gone too


def test_hang_up_during_the_greeting(rig: Rig, boxes: Mailboxes, prompts: PromptCache) -> None:
    done = deposit(rig, boxes, prompts)
    rig.run(1.0)
    rig.session.stop()
    rig.run(1.0)
    assert done == [None] and rig.engine.legs[rig.chan.media_leg].player is None


def test_recording_stops_at_max_seconds(rig: Rig, boxes: Mailboxes, prompts: PromptCache) -> None:
    done = deposit(rig, boxes, prompts, max_seconds=1.5)
    rig.key("#")
    rig.run_until(lambda: rig.session.state == DepositState.RECORDING)
    took = rig.run_until(lambda: bool(done), talk=CALLER_FREQ, limit=5.0)
    assert took == pytest.approx(1.5, abs=0.05)
    msg = boxes.message(done[0] or -1)
    assert msg is not None and msg.duration_s == pytest.approx(1.5, abs=0.15)


def test_record_parties_is_preferred_when_the_engine_offers_it(rig: Rig, boxes: Mailboxes,
                                                                prompts: PromptCache) -> None:
    class PartiesEngine:
        """The engine plus the planned record_parties(path, legs, stereo) call."""

        def __init__(self, engine: MediaEngine) -> None:
            self.engine = engine
            self.calls: list[tuple[str, list[str], bool]] = []

        def __getattr__(self, name: str) -> Any:
            return getattr(self.engine, name)

        def record_parties(self, path: str, legs: list[str], stereo: bool = False) -> str:
            self.calls.append((path, list(legs), stereo))
            return self.engine.record(legs[0], path)

    media = PartiesEngine(rig.engine)
    done = deposit(rig, boxes, prompts, media=media)
    rig.key("#")
    rig.run_until(lambda: rig.session.state == DepositState.RECORDING)
    rig.run(1.2, talk=CALLER_FREQ)
    rig.key("#")
    assert done[0] is not None
    assert media.calls == [(str(boxes.message(done[0]).path), [rig.chan.media_leg], False)]


# -- retrieval ----------------------------------------------------------------------------------
def _seed(boxes: Mailboxes) -> tuple[int, int]:
    """One old message (900 Hz, received first) and one new one (700 Hz)."""
    old = boxes.add("1001", "1003", "", write_tone_wav(boxes.new_path("1001"), 900, 1.5, rate=16000), None, at=1.0)
    new = boxes.add("1001", "1002", "", write_tone_wav(boxes.new_path("1001"), 700, 1.5, rate=16000), None, at=2.0)
    assert old and new
    boxes.mark_heard(old)
    return old, new


def retrieve(rig: Rig, boxes: Mailboxes, prompts: PromptCache, mailbox: str | None,
             pin_required: bool) -> list[str | None]:
    done: list[str | None] = []
    rig.session = RetrievalSession(rig.chan, mailbox, boxes, pin_required, rig.engine, rig.schedule, prompts,
                                   done.append)
    rig.session.start()
    return done


def test_intro_text_counts() -> None:
    assert intro_text(2, 0) == "You have 2 new messages."
    assert intro_text(1, 1) == "You have 1 new message and 1 saved message."
    assert intro_text(0, 3) == "You have 0 new messages and 3 saved messages."
    assert intro_text(0, 0) == "You have no messages. Goodbye."


def test_own_phone_listens_new_first_marks_heard_and_deletes(rig: Rig, boxes: Mailboxes,
                                                            prompts: PromptCache) -> None:
    old, new = _seed(boxes)
    done = retrieve(rig, boxes, prompts, "1001", pin_required=False)
    assert rig.session.state == RetrievalState.INTRO
    rig.run_until(lambda: rig.session.state == RetrievalState.MESSAGE)
    mark = len(rig.heard)
    rig.run_until(lambda: rig.session.state == RetrievalState.MENU)
    assert power_share(rig.heard_pcm(mark), 700.0) > 0.8  # the new message comes first
    rig.run(1.0)
    rig.key("2")  # next: the first one is now heard
    assert boxes.counts("1001") == (0, 2)
    assert rig.session.state == RetrievalState.MESSAGE and rig.session.current.id == old
    mark = len(rig.heard)
    rig.run(1.0)
    assert power_share(rig.heard_pcm(mark), 900.0) > 0.8
    rig.key("7")  # delete while it plays
    assert boxes.message(old) is None and boxes.counts("1001") == (0, 1)
    rig.run_until(lambda: bool(done))
    assert done == ["1001"] and rig.session.state == RetrievalState.DONE


def test_replay_skip_and_menu_timeout(rig: Rig, boxes: Mailboxes, prompts: PromptCache) -> None:
    old, new = _seed(boxes)
    done = retrieve(rig, boxes, prompts, "1001", pin_required=False)
    rig.run_until(lambda: rig.session.state == RetrievalState.MESSAGE)
    rig.run(1.0)
    rig.key("1")  # replay from the start
    took = rig.run_until(lambda: rig.session.state == RetrievalState.MENU)
    assert took == pytest.approx(1.5, abs=0.1)
    rig.key("#")  # skip: stays new
    assert rig.session.current.id == old and boxes.counts("1001") == (1, 1)
    rig.run_until(lambda: rig.session.state == RetrievalState.MENU)
    rig.run_until(lambda: bool(done), limit=30.0)  # no key after the menu: next, as heard
    assert done == ["1001"] and boxes.counts("1001") == (1, 1)


def test_other_mailbox_needs_the_pin_and_three_wrong_tries_hang_up(rig: Rig, boxes: Mailboxes,
                                                                   prompts: PromptCache) -> None:
    _seed(boxes)
    boxes.store.set_setting("voicemail.pin.1001", "2468")
    done = retrieve(rig, boxes, prompts, None, pin_required=True)
    assert rig.session.state == RetrievalState.ASK_MAILBOX
    rig.run(0.5)
    for d in "1001#":  # typing ahead interrupts the prompt
        rig.key(d)
    assert rig.session.mailbox == "1001" and rig.session.state == RetrievalState.ASK_PIN
    for attempt in ("1111#", "2222#"):
        rig.run_until(lambda: rig.session.state == RetrievalState.ASK_PIN and rig.session.play_id is None)
        for d in attempt:
            rig.key(d)
        assert rig.session.state == RetrievalState.NOTICE  # "Incorrect PIN."
    rig.run_until(lambda: rig.session.state == RetrievalState.ASK_PIN)
    # Nothing typed: the digit timeout after the prompt is the third failed try.
    waited = rig.run_until(lambda: rig.session.state == RetrievalState.GOODBYE)
    assert waited > 5.0
    rig.run_until(lambda: bool(done))
    assert done == [None]  # nothing was opened
    assert boxes.counts("1001") == (1, 1)


def test_other_mailbox_with_the_right_pin(rig: Rig, boxes: Mailboxes, prompts: PromptCache) -> None:
    _seed(boxes)
    boxes.store.set_setting("voicemail.pin.1001", "2468")
    done = retrieve(rig, boxes, prompts, None, pin_required=True)
    rig.run_until(lambda: rig.session.play_id is None)
    for d in "1001#":
        rig.key(d)
    rig.run(0.5)
    for d in "2468":
        rig.key(d)
    rig.run(6.0)  # no '#': the inter-digit timeout submits
    assert rig.session.state in (RetrievalState.INTRO, RetrievalState.MESSAGE)
    rig.session.stop()  # hang up while listening
    assert done == ["1001"]
    assert rig.engine.legs[rig.chan.media_leg].player is None


def test_mailbox_without_pin_cannot_be_opened_from_another_phone(rig: Rig, boxes: Mailboxes,
                                                                 prompts: PromptCache) -> None:
    _seed(boxes)
    done = retrieve(rig, boxes, prompts, "1001", pin_required=True)
    for _ in range(3):
        rig.run_until(lambda: rig.session.state == RetrievalState.ASK_PIN and rig.session.play_id is None)
        rig.key("#")  # the empty PIN
    rig.run_until(lambda: bool(done))
    assert done == [None]


def test_empty_mailbox(rig: Rig, boxes: Mailboxes, prompts: PromptCache) -> None:
    done = retrieve(rig, boxes, prompts, "1001", pin_required=False)
    mark = len(rig.heard)
    rig.run_until(lambda: bool(done))
    assert done == ["1001"] and np.any(rig.heard_pcm(mark))  # "You have no messages" was spoken


# -- PIN guessing across calls (issue 12, finding 4) ---------------------------------------------
def _guess(rig: Rig, boxes: Mailboxes, prompts: PromptCache, guard: PinGuard, source: str,
           pins: list[str]) -> tuple[list[str | None], int]:
    """One *98 call to mailbox 1001 trying `pins`; returns (on_done result, PINs typed)."""
    done: list[str | None] = []
    session = RetrievalSession(rig.chan, None, boxes, True, rig.engine, rig.schedule, prompts, done.append,
                               pin_guard=guard, source=source)
    rig.session = session
    session.start()
    typed = 0
    if session.state == RetrievalState.ASK_MAILBOX:
        rig.run(0.3)
        for d in "1001#":
            rig.key(d)
        for pin in pins:
            rig.run_until(lambda: session.state == RetrievalState.GOODBYE
                          or (session.state == RetrievalState.ASK_PIN and session.play_id is None))
            if session.state != RetrievalState.ASK_PIN:
                break
            for d in pin + "#":
                rig.key(d)
            typed += 1
    rig.run_until(lambda: bool(done) or session.state in (RetrievalState.INTRO, RetrievalState.MESSAGE))
    return done, typed


def test_wrong_pins_across_calls_lock_out_the_caller_and_the_mailbox(rig: Rig, boxes: Mailboxes,
                                                                     prompts: PromptCache) -> None:
    _seed(boxes)
    boxes.store.set_setting("voicemail.pin.1001", "2468")
    guard = PinGuard(max_failures=5)
    typed = 0
    for _call in range(6):  # the finding: 6 calls of 3 wrong PINs were 18 tries
        done, n = _guess(rig, boxes, prompts, guard, "ext:1002", ["1111", "2222", "3333"])
        assert done == [None]
        typed += n
    assert typed == 5  # call 1: 3 tries, call 2: 2 then locked, calls 3-6: goodbye at once
    assert {e.key for e in guard.lockouts()} == {"ext:1002", "mailbox:1001"}
    # The right PIN from another desk is refused while the mailbox is locked: no oracle.
    done, n = _guess(rig, boxes, prompts, guard, "ext:1003", ["2468"])
    assert done == [None] and n == 1 and guard.refused_while_locked >= 5
    assert boxes.counts("1001") == (1, 1)  # nothing was heard
    guard.unlock("mailbox:1001")
    done, _ = _guess(rig, boxes, prompts, guard, "ext:1003", ["2468"])
    assert not done and rig.session.opened
