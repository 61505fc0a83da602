"""The I/O-free IVR interpreter: every node type, menu retries, collect, sensitivity, illegal inputs."""
from __future__ import annotations

import datetime as dt
import textwrap

import pytest

from appliance.ivr.contacts import Contact, InMemoryContacts
from appliance.ivr.flow import Prompt, RouteTarget, load_flow
from appliance.ivr.interpreter import (
    CollectDigits,
    Digits,
    Hangup,
    Interpreter,
    InterpreterError,
    Play,
    PlaybackDone,
    Route,
    SetSensitive,
    SetVar,
    State,
    Timeout,
)

NOON = dt.datetime(2026, 11, 23, 12, 0)


def _interp(nodes: str, caller: str = "+33612345678", contacts: InMemoryContacts | None = None) -> Interpreter:
    flow = load_flow("name: t\nversion: 2\nstart: a\nnodes:\n" + textwrap.indent(textwrap.dedent(nodes), "  "))
    return Interpreter(flow, caller, lambda: NOON, contacts)


MENU = """
    a:
      type: menu
      prompt: "say: choose"
      options: {1: one, 2: two}
      max_retries: 2
      invalid_prompt: "say: wrong"
      timeout_prompt: "say: still there?"
      on_invalid: bad
      on_timeout: silent
    one: {type: route, target: "queue:one"}
    two: {type: route, target: "queue:two"}
    bad: {type: route, target: "extension:1001"}
    silent: {type: hangup}
    """


def test_menu_valid_choice_routes_and_records_choice() -> None:
    it = _interp(MENU)
    assert it.start()[-1] == Play(Prompt("say", "choose"), interruptible=True)
    assert it.feed(PlaybackDone()) == [CollectDigits(1, 5.0, "", False)]
    out = it.feed(Digits("2"))
    assert out[-1] == Route(RouteTarget("queue", "two")) and it.state is State.DONE
    assert it.variables["ivr_choices"] == "2" and it.variables["ivr_path"] == "a>two"


def test_menu_barge_in_digit_during_prompt() -> None:
    it = _interp(MENU)
    it.start()
    assert it.feed(Digits("1"))[-1] == Route(RouteTarget("queue", "one"))


def test_menu_invalid_retries_then_invalid_destination() -> None:
    it = _interp(MENU)
    it.start()
    it.feed(PlaybackDone())
    for _ in range(2):  # max_retries: 2 re-prompts, each after the invalid notice
        assert it.feed(Digits("7")) == [Play(Prompt("say", "wrong"))]
        assert it.feed(PlaybackDone())[-1] == Play(Prompt("say", "choose"), interruptible=True)
        it.feed(PlaybackDone())
    assert it.feed(Digits("9"))[-1] == Route(RouteTarget("extension", "1001"))


def test_menu_timeouts_then_timeout_destination_and_mixed_failures_share_the_count() -> None:
    it = _interp(MENU)
    it.start()
    it.feed(PlaybackDone())
    assert it.feed(Timeout()) == [Play(Prompt("say", "still there?"))]
    it.feed(PlaybackDone())
    it.feed(PlaybackDone())
    assert it.feed(Digits("5")) == [Play(Prompt("say", "wrong"))]
    it.feed(PlaybackDone())
    it.feed(PlaybackDone())
    out = it.feed(Timeout())
    assert out[-1] == Hangup("flow") and it.path[-1] == "silent"


def test_menu_without_destinations_hangs_up_when_retries_are_spent() -> None:
    it = _interp("""
        a: {type: menu, prompt: "say: x", options: {1: b}, max_retries: 0}
        b: {type: hangup}
        """)
    it.start()
    it.feed(PlaybackDone())
    assert it.feed(Timeout()) == [Hangup("a: retries exhausted (timeout)")]


COLLECT = """
    a:
      type: collect
      prompt: "say: account"
      variable: account
      min_digits: 4
      max_digits: 6
      max_retries: 1
      next: b
      on_invalid: inv
      on_timeout: inv
    b: {type: play, prompt: "say: account ${account} for ${caller}", next: c}
    c: {type: hangup}
    inv: {type: route, target: "voicemail:1001"}
    """


def test_collect_with_terminator_then_substitution_in_say() -> None:
    it = _interp(COLLECT)
    it.start()
    assert it.feed(PlaybackDone()) == [CollectDigits(6, 5.0, "#", False)]
    out = it.feed(Digits("12345#"))
    assert SetVar("account", "12345") in out
    assert out[-1] == Play(Prompt("say", "account 12345 for +33612345678"))
    assert it.feed(PlaybackDone())[-1] == Hangup("flow")


def test_collect_barge_in_partial_then_rest_and_partial_timeout() -> None:
    it = _interp(COLLECT)
    it.start()
    assert it.feed(Digits("12")) == [CollectDigits(4, 5.0, "#", False)]  # 2 of 6 during the prompt
    assert SetVar("account", "123456") in it.feed(Digits("3456"))
    it2 = _interp(COLLECT)
    it2.start()
    it2.feed(Digits("1234"))
    assert SetVar("account", "1234") in it2.feed(Timeout())  # inter-digit timeout ends a long-enough entry


def test_collect_too_short_retries_then_invalid_destination() -> None:
    it = _interp(COLLECT)
    it.start()
    it.feed(PlaybackDone())
    assert it.feed(Digits("12#"))[-1] == Play(Prompt("say", "account"), interruptible=True)
    it.feed(PlaybackDone())
    assert it.feed(Digits("1#"))[-1] == Route(RouteTarget("voicemail", "1001"))
    assert "account" not in it.variables


def test_sensitive_node_pauses_and_resumes_recording() -> None:
    it = _interp("""
        a: {type: play, prompt: "say: hi", next: card}
        card: {type: collect, sensitive: true, prompt: "say: card", variable: pan, min_digits: 13, max_digits: 19,
               next: done}
        done: {type: route, target: "queue:billing"}
        """)
    assert SetSensitive(True) not in it.start()
    out = it.feed(PlaybackDone())
    assert out[-2:] == [SetSensitive(True), Play(Prompt("say", "card"), sensitive=True, interruptible=True)]
    assert it.feed(PlaybackDone()) == [CollectDigits(19, 5.0, "#", True)]
    out = it.feed(Digits("4111111111111111#"))
    assert out.index(SetVar("pan", "4111111111111111")) < out.index(SetSensitive(False))
    assert out[-1] == Route(RouteTarget("queue", "billing")) and it.sensitive_variables == {"pan"}


def test_hours_set_and_lookup_known_and_new_callers() -> None:
    nodes = """
        a: {type: lookup_caller, next: known, on_new: new}
        known: {type: set, variables: {greeting: "hello ${contact_name}", vip: "${contact_tier}"}, next: h}
        new: {type: set, variables: {greeting: "welcome"}, next: h}
        h: {type: hours, timezone: Europe/Paris, open: ["mon-fri 08:00-20:00"], next_open: o, next_closed: c}
        o: {type: route, target: "queue:open"}
        c: {type: route, target: "voicemail:2000"}
        """
    book = InMemoryContacts([Contact("k1", "+33611111111", "Ada", {"tier": "gold"})])
    it = _interp(nodes, caller="+33611111111", contacts=book)
    assert it.start()[-1] == Route(RouteTarget("queue", "open"))
    assert it.variables["greeting"] == "hello Ada" and it.variables["vip"] == "gold"
    assert it.variables["contact_id"] == "k1" and it.variables["contact_known"] == "true"
    it = _interp(nodes, caller="+33622222222", contacts=book)
    it.start()
    assert it.variables["greeting"] == "welcome" and it.variables["contact_known"] == "false"
    assert book.find_by_number("+33622222222") is not None  # the unknown caller became a contact
    it = _interp(nodes, caller="anonymous", contacts=book)
    it.start()
    assert "contact_id" not in it.variables and book.find_by_number("anonymous") is None
    closed = Interpreter(it.flow, "+33611111111", lambda: dt.datetime(2026, 11, 22, 12, 0), book)
    assert closed.start()[-1] == Route(RouteTarget("voicemail", "2000"))


def test_illegal_inputs_raise() -> None:
    it = _interp(MENU)
    with pytest.raises(InterpreterError):
        it.feed(PlaybackDone())  # before start
    it.start()
    with pytest.raises(InterpreterError):
        it.feed(Timeout())  # while the prompt plays
    it.feed(PlaybackDone())
    with pytest.raises(InterpreterError):
        it.feed(Digits("x"))
    it.feed(Digits("1"))
    with pytest.raises(InterpreterError):
        it.feed(Digits("1"))  # after the route
    with pytest.raises(InterpreterError):
        it.start()
    play = _interp('a: {type: play, prompt: "say: x", next: b}\nb: {type: hangup}\n')
    play.start()
    with pytest.raises(InterpreterError):
        play.feed(Digits("1"))  # a play node's prompt is not interruptible
