"""IVR flow documents: parsing every node type, validation messages naming node and field, hours."""
from __future__ import annotations

import datetime as dt
import json
import pathlib
import textwrap
from zoneinfo import ZoneInfo

import pytest

from appliance.ivr.flow import (
    CollectNode,
    FlowError,
    HangupNode,
    HoursNode,
    LookupCallerNode,
    MenuNode,
    PlayNode,
    Prompt,
    RouteNode,
    RouteTarget,
    SetNode,
    load_flow,
    load_flow_file,
)

DEMO = pathlib.Path(__file__).resolve().parents[2] / "appliance" / "ivr" / "examples" / "demo.yaml"


def _doc(nodes: str, start: str = "a") -> str:
    return f"name: t\nversion: 1\nstart: {start}\nnodes:\n" + textwrap.indent(textwrap.dedent(nodes), "  ")


def _errors(text: str) -> list[str]:
    with pytest.raises(FlowError) as info:
        load_flow(text)
    return info.value.errors


def test_demo_flow_validates_with_every_node_kind() -> None:
    flow = load_flow_file(str(DEMO))
    assert (flow.name, flow.version, flow.start) == ("demo", 1, "identify")
    kinds = {type(n) for n in flow.nodes.values()}
    assert {PlayNode, MenuNode, CollectNode, HoursNode, LookupCallerNode, SetNode, RouteNode} <= kinds
    assert flow.nodes["card_number"].sensitive and not flow.nodes["support_number"].sensitive
    menu = flow.nodes["main_menu"]
    assert isinstance(menu, MenuNode) and menu.options == {"1": "sales_menu", "2": "support_number", "0": "operator"}
    assert menu.invalid_prompt == Prompt("say", "Sorry, that is not a valid choice.")
    route = flow.nodes["to_voicemail"]
    assert isinstance(route, RouteNode) and route.target == RouteTarget("voicemail", "1001")


def test_json_document_and_all_route_kinds_and_hangup() -> None:
    doc = {"name": "j", "version": 3, "start": "m", "nodes": {
        "m": {"type": "menu", "prompt": "sounds/menu.wav", "options": {
            "1": "q", "2": "x", "3": "v", "4": "e", "5": "f", "#": "h"}},
        "q": {"type": "route", "target": "queue:sales"}, "x": {"type": "route", "target": "extension:1001"},
        "v": {"type": "route", "target": "voicemail:1002"}, "e": {"type": "route", "target": "external:+33140000000"},
        "f": {"type": "route", "target": "flow:after-hours"}, "h": {"type": "hangup"}}}
    flow = load_flow(json.dumps(doc))
    assert flow.version == 3
    assert [str(n.target) for n in flow.nodes.values() if isinstance(n, RouteNode)] == [
        "queue:sales", "extension:1001", "voicemail:1002", "external:+33140000000", "flow:after-hours"]
    assert isinstance(flow.nodes["h"], HangupNode)
    menu = flow.nodes["m"]
    assert isinstance(menu, MenuNode) and menu.prompt == Prompt("wav", "sounds/menu.wav") and "#" in menu.options


def test_unknown_node_reference_names_node_and_field() -> None:
    errs = _errors(_doc("""
        main_menu:
          type: menu
          prompt: "say: hi"
          options: {1: salse, 2: support}
        support: {type: hangup}
        """, start="main_menu"))
    assert errs == ["nodes.main_menu.options.1: unknown node 'salse'"]


def test_several_errors_reported_together() -> None:
    errs = _errors(_doc("""
        a:
          type: menu
          prompt: "hello"
          options: {12: b}
          timeout: -1
          colour: blue
        b: {type: route, target: "queue:"}
        c: {type: play, prompt: "say: x"}
        d: {type: teleport}
        e: {type: collect, prompt: "say: x", variable: "1bad", next: b, min_digits: 6, max_digits: 4}
        f: {type: route, target: "sip:alice@example.com"}
        g: {type: set, variables: {"bad name": x}, next: b}
        """))
    assert "nodes.a.prompt: expected a .wav path or 'say: text', got 'hello'" in errs
    assert any(e.startswith("nodes.a.options.12: option keys are single DTMF keys") for e in errs)
    assert "nodes.a.timeout: must be between 0.5 and 120, got -1" in errs
    assert "nodes.a.colour: unknown key" in errs
    assert "nodes.b.target: bad queue ''" in errs
    assert "nodes.c.next: required" in errs
    assert any(e.startswith("nodes.d.type: unknown node type 'teleport'") for e in errs)
    assert "nodes.e.variable: not a valid variable name: '1bad'" in errs
    assert "nodes.e.min_digits: 6 is more than max_digits 4" in errs
    assert any(e.startswith("nodes.f.target: expected one of queue:...") for e in errs)
    assert "nodes.g.variables.bad name: not a valid variable name" in errs


def test_top_level_errors() -> None:
    assert _errors("name: t\nstart: a\nnodes: {a: {type: hangup}}\nextra: 1\n") == [
        "version: required", "extra: unknown key"]
    assert _errors(_doc("a: {type: hangup}", start="nowhere")) == ["start: unknown node 'nowhere'"]
    assert _errors("- just a list") == ["document: expected a mapping with name, version, start and nodes"]
    assert _errors("name: [unclosed")[0].startswith("document: not valid YAML/JSON")


def test_unreachable_node_is_reported() -> None:
    errs = _errors(_doc("""
        a: {type: route, target: "queue:q"}
        orphan: {type: hangup}
        """))
    assert errs == ["nodes.orphan: unreachable from start 'a'"]


def test_loop_without_input_is_rejected() -> None:
    errs = _errors(_doc("""
        a: {type: play, prompt: "say: one", next: b}
        b: {type: set, variables: {x: "1"}, next: a}
        """))
    assert "nodes.a: no path from here ends in a route or hangup" in errs
    assert any(e.startswith("nodes.b.next: loop without caller input") and "a -> b -> a" in e for e in errs)


def test_menu_timeout_looping_back_through_a_play_is_rejected() -> None:
    # The menu's own retries are bounded, but a timeout arc back to it restarts them: a silent caller loops forever.
    errs = _errors(_doc("""
        a:
          type: menu
          prompt: "say: choose"
          options: {1: done}
          on_timeout: sorry
          on_invalid: done
        sorry: {type: play, prompt: "say: sorry", next: a}
        done: {type: hangup}
        """))
    assert len(errs) == 1 and errs[0].startswith("nodes.sorry.next: loop without caller input")


def test_menu_loop_through_a_key_press_is_allowed() -> None:
    flow = load_flow(_doc("""
        a:
          type: menu
          prompt: "say: press 9 to hear this again"
          options: {9: again, 1: done}
        again: {type: play, prompt: "say: again", next: a}
        done: {type: hangup}
        """))
    assert set(flow.nodes) == {"a", "again", "done"}


def test_subgraph_that_never_ends_is_rejected() -> None:
    errs = _errors(_doc("""
        a:
          type: menu
          prompt: "say: choose"
          options: {1: b}
          on_invalid: b
          on_timeout: b
        b:
          type: collect
          prompt: "say: number"
          variable: n
          next: a
          on_invalid: a
          on_timeout: a
        """))
    assert "nodes.a: no path from here ends in a route or hangup" in errs
    assert "nodes.b: no path from here ends in a route or hangup" in errs
    assert any(e.startswith("nodes.b.on_timeout: loop without caller input") for e in errs)


def test_menu_without_exhausted_destinations_ends_by_hanging_up() -> None:
    # Same shape, but the menu has no on_timeout: a silent caller is hung up on, so the flow is valid.
    flow = load_flow(_doc("""
        a:
          type: menu
          prompt: "say: choose"
          options: {1: b}
          on_invalid: b
        b:
          type: collect
          prompt: "say: number"
          variable: n
          next: a
          on_invalid: a
          on_timeout: a
        """))
    assert set(flow.nodes) == {"a", "b"}


def test_hours_parse_errors_name_the_field() -> None:
    errs = _errors(_doc("""
        a:
          type: hours
          timezone: Europe/Pariss
          open: ["mon-fri 08:30-18:00", "funday 10:00-12:00", "sat 12:00-09:00"]
          holidays: [2026-12-25, "christmas"]
          next_open: b
          next_closed: b
        b: {type: hangup}
        """))
    assert errs == [
        "nodes.a.timezone: unknown time zone 'Europe/Pariss'",
        "nodes.a.open.1: unknown day in 'funday' (use mon, tue, wed, thu, fri, sat, sun)",
        "nodes.a.open.2: end 09:00 is not after start 12:00",
        "nodes.a.holidays.1: expected YYYY-MM-DD or MM-DD, got 'christmas'",
    ]


def _hours(open_: str = '["mon-fri 08:30-18:00"]', holidays: str = "[]") -> HoursNode:
    flow = load_flow(_doc(f"""
        a:
          type: hours
          timezone: Europe/Paris
          open: {open_}
          holidays: {holidays}
          next_open: b
          next_closed: b
        b: {{type: hangup}}
        """))
    node = flow.nodes["a"]
    assert isinstance(node, HoursNode)
    return node


def test_hours_in_paris_across_the_dst_boundary() -> None:
    node = _hours()
    utc = dt.UTC
    # Friday 27 March 2026 is still CET (UTC+1): 07:45 UTC is 08:45 in Paris, open.
    assert node.is_open(dt.datetime(2026, 3, 27, 7, 45, tzinfo=utc))
    assert not node.is_open(dt.datetime(2026, 3, 27, 7, 15, tzinfo=utc))  # 08:15 Paris
    # Monday 30 March 2026 is CEST (UTC+2) after the 29 March switch: 06:45 UTC is 08:45 in Paris, open,
    # and 16:15 UTC is 18:15, closed (the same UTC times a week earlier are 07:45 and 17:15).
    assert node.is_open(dt.datetime(2026, 3, 30, 6, 45, tzinfo=utc))
    assert not node.is_open(dt.datetime(2026, 3, 30, 16, 15, tzinfo=utc))
    assert node.is_open(dt.datetime(2026, 3, 23, 16, 15, tzinfo=utc))
    # Another zone's aware time is converted: 10:00 in New York (UTC-4 on 2026-03-27) is 15:00 in Paris.
    assert node.is_open(dt.datetime(2026, 3, 27, 10, 0, tzinfo=ZoneInfo("America/New_York")))
    # A naive time is Paris wall-clock time.
    assert node.is_open(dt.datetime(2026, 11, 23, 10, 0)) and not node.is_open(dt.datetime(2026, 11, 22, 10, 0))
    assert not node.is_open(dt.datetime(2026, 11, 23, 18, 0))  # the end is exclusive


def test_hours_holidays_wrapping_days_and_midnight() -> None:
    node = _hours('["fri-mon 20:00-24:00", "wed 09:00-10:00"]', '[2026-12-25, "05-01"]')
    assert node.is_open(dt.datetime(2026, 11, 23, 23, 59))  # Monday, inside fri-mon (wraps over the weekend)
    assert node.is_open(dt.datetime(2026, 11, 22, 20, 0))  # Sunday
    assert not node.is_open(dt.datetime(2026, 11, 24, 21, 0))  # Tuesday
    assert node.is_open(dt.datetime(2026, 11, 25, 9, 30))  # Wednesday
    assert not node.is_open(dt.datetime(2026, 12, 25, 21, 0))  # Friday, but a dated holiday
    assert not node.is_open(dt.datetime(2026, 5, 1, 21, 0))  # Friday 1 May: a yearly holiday
    assert node.is_open(dt.datetime(2026, 5, 8, 21, 0))


@pytest.mark.parametrize("text", [
    "name: a\nversion: 1\nwhen: 2026-02-30\n",  # PyYAML: ValueError (day out of range)
    "? [a, b]\n: 1\n",  # PyYAML: TypeError (unhashable key)
    "[" * 5000 + "]" * 5000,  # RecursionError in the composer
    "{" + '"a":' * 1 + "[" * 50000 + "]" * 50000 + "}",  # and in json
])
def test_yaml_the_loader_cannot_build_is_a_flow_error(text):
    # Found by fuzz/ivr_flow: these escaped load_flow as ValueError/TypeError/RecursionError.
    with pytest.raises(FlowError):
        load_flow(text)
