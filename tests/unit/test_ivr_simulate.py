"""The IVR simulator and its CLI entry, on the shipped demo flow."""
from __future__ import annotations

import datetime as dt
import pathlib
from zoneinfo import ZoneInfo

import pytest

from appliance.ivr.contacts import Contact, InMemoryContacts
from appliance.ivr.flow import Flow, load_flow_file
from appliance.ivr.simulate import main, simulate

DEMO = pathlib.Path(__file__).resolve().parents[2] / "appliance" / "ivr" / "examples" / "demo.yaml"
MONDAY_10 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Europe/Paris"))


@pytest.fixture(scope="module")
def demo() -> Flow:
    return load_flow_file(str(DEMO))


def test_sales_english_on_a_weekday(demo: Flow) -> None:
    t = simulate(demo, ["1", "2"], "+33612345678", MONDAY_10)
    assert t.outcome == "route queue:sales-en"
    assert t.path == ["identify", "check_hours", "welcome", "main_menu", "sales_menu", "sales_en"]
    inputs = [(e.node, e.input, e.outcome) for e in t.entries if e.input]
    assert inputs == [("main_menu", "1", "-> sales_menu"), ("sales_menu", "2", "-> sales_en")]
    assert t.variables["ivr_choices"] == "1,2" and t.variables["contact_known"] == "false"
    assert t.render().splitlines()[-1] == "=> route queue:sales-en"


def test_sunday_goes_to_voicemail(demo: Flow) -> None:
    t = simulate(demo, ["1", "2"], "+33612345678", dt.datetime(2026, 11, 22, 10, 0))
    assert t.outcome == "route voicemail:1001" and "main_menu" not in t.path


def test_holiday_and_evening_go_to_voicemail(demo: Flow) -> None:
    assert simulate(demo, ["1"], "+33612345678", dt.datetime(2026, 12, 25, 10, 0)).outcome == "route voicemail:1001"
    # 17:30 UTC on a November Monday is 18:30 in Paris: closed.
    late = dt.datetime(2026, 11, 23, 17, 30, tzinfo=dt.UTC)
    assert simulate(demo, ["1"], "+33612345678", late).outcome == "route voicemail:1001"


def test_operator_french_and_invalid_then_silence(demo: Flow) -> None:
    assert simulate(demo, ["0"], "+33612345678", MONDAY_10).outcome == "route extension:1001"
    assert simulate(demo, ["1", "1"], "+33612345678", MONDAY_10).outcome == "route queue:sales-fr"
    t = simulate(demo, ["7", "", "timeout"], "+33612345678", MONDAY_10)
    assert t.outcome == "route extension:1001"  # three failures with max_retries 2 -> on_timeout: operator
    assert [e.outcome for e in t.entries if e.input] == ["retry", "retry", "-> operator"]


def test_support_with_card_capture_masks_card_data(demo: Flow) -> None:
    book = InMemoryContacts([Contact("k9", "+33612345678", "Ada")])
    t = simulate(demo, ["2", "123456#", "1", "4111111111111111#"], "+33612345678", MONDAY_10, book)
    assert t.outcome == "route queue:support"
    assert t.variables["customer_number"] == "123456" and t.variables["card_number"] == "****"
    assert t.variables["payment"] == "card for customer 123456" and t.variables["contact_name"] == "Ada"
    text = t.render()
    assert "4111" not in text and "recording paused (sensitive)" in text and "recording resumed" in text


def test_cli_main_prints_transcript(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(DEMO), "--digits", "1,2", "--caller", "+33612345678", "--at", "2026-11-23T10:00"]) == 0
    out = capsys.readouterr().out
    assert "main_menu" in out and out.strip().endswith("=> route queue:sales-en")
    assert main([str(DEMO), "--digits", "1,2", "--at", "2026-11-22T10:00"]) == 0
    assert capsys.readouterr().out.strip().endswith("=> route voicemail:1001")


def test_cli_main_reports_invalid_flow(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: b\nversion: 1\nstart: m\nnodes:\n  m: {type: menu, prompt: 'say: x', options: {1: salse}}\n")
    assert main([str(bad), "--digits", "1"]) == 2
    assert "nodes.m.options.1: unknown node 'salse'" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.yaml")]) == 2
    assert main([str(DEMO), "--at", "not-a-date"]) == 2
