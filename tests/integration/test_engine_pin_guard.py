"""PIN guessing across calls, as an attacker does it (issue 12, finding 4).

A pjsua2 phone dials *98, names someone else's mailbox and keys wrong PINs in RFC 4733,
hangs up when the PBX says goodbye, and calls again. On the old engine every try counted
afresh (18 wrong PINs over 6 calls, all accepted); now the fifth failure locks the caller and
the mailbox, the lockout is listed in /v1/status, and the right PIN keyed afterwards from
another phone is refused too (a lockout that let the right PIN through would be an oracle).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers.engine import Engine, default_config
from tests.peers.pjsua import PjPhone
from tests.peers.polling import wait_until

PIN = "2468"


@pytest.fixture
def pbx(tmp_path: Path) -> Iterator[Engine]:
    cfg: dict[str, Any] = default_config()
    next(e for e in cfg["extensions"] if e["number"] == "1002")["voicemail"] = True
    cfg["settings"] = {"voicemail.pin.1002": PIN}
    eng = Engine(tmp_path / "engine", config=cfg)
    with eng.running():
        yield eng


def _wrong_tries(eng: Engine) -> int:
    return eng.stderr_tail(10**8).count("wrong voicemail PIN")


def _key_pin(phone: PjPhone, call: int, pin: str, judged: Callable[[], bool]) -> None:
    """Key one PIN and wait until `judged` says the PBX has taken it.

    Keys pressed while the PBX is still saying "Incorrect PIN" are not taken (the prompt that
    asks again is what listens), so a PIN that went unheard is keyed again rather than waited
    for with a fixed pause.
    """
    for _ in range(6):
        phone.dial_dtmf(call, pin + "#")
        try:
            wait_until(judged, timeout=4.0, what="the PBX to judge the PIN")
            return
        except AssertionError:
            continue
    raise AssertionError(f"the PBX never judged PIN {pin!r}")


def _wrong_pin(phone: PjPhone, call: int, eng: Engine, pin: str) -> None:
    before = _wrong_tries(eng)
    _key_pin(phone, call, pin, lambda: _wrong_tries(eng) > before)


def _lockouts(eng: Engine) -> dict[str, Any]:
    status, body = eng.api("GET", "/v1/status")
    assert status == 200
    return dict(body["pin_lockouts"])


def test_wrong_pins_across_calls_lock_the_mailbox_and_the_right_pin_is_then_refused(pbx: Engine) -> None:
    with PjPhone("mallory") as mallory, PjPhone("owner") as owner:
        mallory.register("1001", pbx.secret("1001"), "127.0.0.1", pbx.sip_port)
        owner.register("1003", pbx.secret("1003"), "127.0.0.1", pbx.sip_port)
        # Call 1: three wrong PINs, then the PBX says goodbye and hangs up.
        first = mallory.call(pbx.uri("*98"))
        mallory.wait_state(first, "CONFIRMED", timeout=8.0)
        mallory.dial_dtmf(first, "1002#")
        for guess in ("1111", "2222", "3333"):
            _wrong_pin(mallory, first, pbx, guess)
        mallory.wait_state(first, "DISCONNECTED", timeout=15.0)
        assert _lockouts(pbx)["locked"] == []
        # Call 2: the fifth wrong PIN overall locks the caller and the mailbox.
        second = mallory.call(pbx.uri("*98"))
        mallory.wait_state(second, "CONFIRMED", timeout=8.0)
        mallory.dial_dtmf(second, "1002#")
        for guess in ("4444", "5555"):
            _wrong_pin(mallory, second, pbx, guess)
        locked = wait_until(lambda: _lockouts(pbx)["locked"], timeout=5.0, what="a PIN lockout")
        assert {e["key"] for e in locked} == {"ext:1001", "mailbox:1002"}, locked
        mallory.wait_state(second, "DISCONNECTED", timeout=15.0)
        assert "locking mailbox:1002" in pbx.stderr_tail(10**8)  # the alert, at WARNING
        # Call 3, from another phone, with the RIGHT PIN: refused while the mailbox is locked.
        refused_before = int(_lockouts(pbx)["refused_while_locked"])
        third = owner.call(pbx.uri("*98"))
        owner.wait_state(third, "CONFIRMED", timeout=8.0)
        owner.dial_dtmf(third, "1002#")
        _key_pin(owner, third, PIN, lambda: int(_lockouts(pbx)["refused_while_locked"]) > refused_before)
        owner.wait_state(third, "DISCONNECTED", timeout=15.0)
    assert _wrong_tries(pbx) == 5  # the right PIN was never even checked
