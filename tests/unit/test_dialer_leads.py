"""Prospect files, E.164 numbers, calling windows, DNC and attempt limits, and the leads' life in the store."""
from __future__ import annotations

import datetime as dt
import pathlib
from zoneinfo import ZoneInfo

import pytest

from appliance.dialer import compliance
from appliance.dialer.campaign import CampaignConfig, check_campaign, parse_window
from appliance.dialer.numbers import NumberError, normalise
from appliance.dialer.prospects import (
    ALREADY_LISTED,
    BAD_NUMBER,
    DUPLICATE,
    MALFORMED,
    ON_DNC,
    ProspectFileError,
    decode,
    read_prospects,
)
from appliance.store import ConfigError, Store
from appliance.store import acd
from appliance.store import dialer as dstore
from appliance.store.models import QueueConfig, Trunk

PARIS = "Europe/Paris"


def _read(text: str, *, dnc: set[str] | None = None, existing: set[str] | None = None,
          mapping: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return read_prospects(text, mapping or {"number": "Phone", "first_name": "Prénom"}, country="FR",
                          site_timezone=PARIS, dnc=dnc or set(), existing=existing or set())


# -- numbers ------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw,country,e164,zone", [
    ("06 12 34 56 78", "FR", "+33612345678", "Europe/Paris"),
    ("0033 6 12 34 56 78", "FR", "+33612345678", "Europe/Paris"),
    ("+44 20 7946 0958", "FR", "+442079460958", "Europe/London"),
    ("(212) 555-0123", "US", "+12125550123", "America/New_York"),
    ("(415) 555-0100", "US", "+14155550100", "America/Los_Angeles"),
])
def test_numbers_become_e164_with_the_lead_zone(raw: str, country: str, e164: str, zone: str) -> None:
    n = normalise(raw, country, PARIS)
    assert (n.e164, n.timezone) == (e164, zone)


def test_a_number_spanning_zones_takes_the_site_zone() -> None:
    # North American toll-free numbers have no single zone.
    assert normalise("1-800-555-0199", "US", "America/Chicago").timezone == "America/Chicago"


@pytest.mark.parametrize("raw,needle", [("", "empty"), ("06 12 ab 56", "not a phone number"),
                                        ("12", "not a phone number"), ("06 12 34 56", "not a valid number"),
                                        ("+999 123 456 789", r"\+999")])
def test_bad_numbers_say_why(raw: str, needle: str) -> None:
    with pytest.raises(NumberError, match=needle):
        normalise(raw, "FR", PARIS)


def test_an_unknown_country_is_refused() -> None:
    with pytest.raises(NumberError, match="not a country code"):
        normalise("0612345678", "XX", PARIS)


# -- prospect files -----------------------------------------------------------------------------
def test_every_row_is_imported_or_listed_with_its_reason() -> None:
    text = ("Phone;Prénom;Ville\n"
            "06 12 34 56 78;Anne;Lyon\n"
            "06 12 34 56 79;Bruno\n"  # one field short
            "0612345678;Anne bis;Lyon\n"  # duplicate of line 2
            "07 00 00;Chloé;Nice\n"  # too short
            "\n"
            "06 98 76 54 32;Denis;Paris\n"  # on the DNC list
            "06 11 11 11 11;Emma;Lille\n"  # already a lead of the campaign
            "+44 20 7946 0958;Fred;London\n")
    leads, report = _read(text, dnc={"+33698765432"}, existing={"+33611111111"})
    assert [(lead.line, lead.number, lead.fields) for lead in leads] == [
        (2, "+33612345678", {"first_name": "Anne", "Ville": "Lyon"}),
        (9, "+442079460958", {"first_name": "Fred", "Ville": "London"}),
    ]
    assert leads[1].timezone == "Europe/London"
    assert report.rows == 7 and report.imported == 2
    assert [(p.line, p.reason) for p in report.problems] == [
        (3, MALFORMED), (4, DUPLICATE), (5, BAD_NUMBER), (7, ON_DNC), (8, ALREADY_LISTED)]
    assert report.counts == {MALFORMED: 1, DUPLICATE: 1, BAD_NUMBER: 1, ON_DNC: 1, ALREADY_LISTED: 1}
    assert report.rows == report.imported + len(report.problems)  # nothing silently dropped
    assert "line 2" in report.problems[1].detail


def test_excel_files_in_windows_1252_with_commas_read() -> None:
    blob = "Phone,Prénom\r\n0612345678,Zoé\r\n".encode("cp1252")
    leads, report = _read(decode(blob))
    assert leads[0].fields == {"first_name": "Zoé"} and report.imported == 1
    assert decode("\ufeffPhone\n".encode()) == "Phone\n"  # Excel's UTF-8 BOM is not part of the header


@pytest.mark.parametrize("text,mapping,needle", [
    ("", None, "empty"),
    ("Tel;Name\n0612345678;A\n", None, "not in the header"),
    ("Phone;Phone\n0612345678;A\n", {"number": "Phone"}, "same name"),
    ("Phone\n0612345678\n", {"first_name": "Phone"}, "which column holds the number"),
])
def test_unreadable_files_are_refused_whole(text: str, mapping: dict[str, str] | None, needle: str) -> None:
    with pytest.raises(ProspectFileError, match=needle):
        _read(text, mapping=mapping)


# -- windows and dial-time checks -------------------------------------------------------------
def _at(zone: str, *args: int) -> float:
    return dt.datetime(*args, tzinfo=ZoneInfo(zone)).timestamp()


def test_windows_parse_and_refuse_nonsense() -> None:
    w = parse_window("mon-fri 10:00-13:00")
    assert w.days == frozenset(range(5)) and w.start == dt.time(10) and w.end == dt.time(13)
    assert parse_window("sat,sun 10:00-12:00").days == frozenset({5, 6})
    for bad in ("mon-fri 10-13", "fri-mon 10:00-12:00", "mon 12:00-10:00", "xyz 10:00-11:00", "mon 25:00-26:00"):
        with pytest.raises(ValueError):
            parse_window(bad)


RULES = compliance.DialRules(windows=["mon-fri 10:00-13:00", "mon-fri 14:00-20:00"], max_attempts=3,
                             number_limit=2)


def _facts(**kw: object) -> compliance.DialFacts:
    base: dict[str, object] = {"number": "+12125550123", "timezone": "America/New_York", "lead_attempts": 0,
                               "number_attempts_recent": 0, "on_dnc": False}
    base.update(kw)
    return compliance.DialFacts(**base)  # type: ignore[arg-type]


def test_the_window_is_judged_in_the_lead_zone() -> None:
    # Tuesday 2026-11-24 16:00 in Paris is 10:00 in New York: open there, and at 13:30 New York it is lunch.
    assert compliance.check_dial(_facts(), RULES, _at(PARIS, 2026, 11, 24, 16, 0)).allowed
    lunch = compliance.check_dial(_facts(), RULES, _at("America/New_York", 2026, 11, 24, 13, 30))
    assert (lunch.allowed, lunch.reason) == (False, compliance.OUTSIDE_WINDOW)
    assert lunch.retry_at == _at("America/New_York", 2026, 11, 24, 14, 0)
    # Friday 21:00 in New York: the next opening is Monday 10:00 there.
    friday = compliance.check_dial(_facts(), RULES, _at("America/New_York", 2026, 11, 27, 21, 0))
    assert friday.retry_at == _at("America/New_York", 2026, 11, 30, 10, 0)
    # 09:30 in Paris is 03:30 in New York: refused although the appliance is in its window.
    assert not compliance.check_dial(_facts(), RULES, _at(PARIS, 2026, 11, 24, 9, 30 + 0)).allowed


def test_dnc_attempts_and_number_limit_refuse() -> None:
    now = _at("America/New_York", 2026, 11, 24, 11, 0)
    assert compliance.check_dial(_facts(on_dnc=True), RULES, now).reason == compliance.DNC
    assert compliance.check_dial(_facts(on_dnc=True), RULES, now).retry_at is None
    assert compliance.check_dial(_facts(lead_attempts=3), RULES, now).reason == compliance.MAX_ATTEMPTS
    limited = compliance.check_dial(_facts(number_attempts_recent=2), RULES, now)
    assert (limited.reason, limited.retry_at) == (compliance.NUMBER_LIMIT, now + 3600)
    assert compliance.check_dial(_facts(timezone="Mars/Olympus"), RULES, now).reason == compliance.BAD_ZONE


def test_campaign_fields_are_checked_one_by_one() -> None:
    good = CampaignConfig(name="winter", queue="sales", trunk="carrier", mode="predictive")
    check_campaign(good)
    for change, needle in [({"mode": "robo"}, "campaign.mode"), ({"windows": ["mon 9-5"]}, "campaign.windows[0]"),
                           ({"retry_minutes": {"sale": 5}}, "campaign.retry_minutes.sale"),
                           ({"abandon_cap": 0.5}, "campaign.abandon_cap"), ({"caller_id": "abc"}, "caller_id"),
                           ({"dispositions": ["a", "a"]}, "dispositions[1]"),
                           ({"abandon_message": " "}, "abandon_message"), ({"max_attempts": "3"}, "max_attempts")]:
        bad = CampaignConfig(**{**good.__dict__, **change})
        with pytest.raises(ConfigError, match=needle.replace("[", r"\[").replace("]", r"\]")):
            check_campaign(bad)


# -- the store --------------------------------------------------------------------------------
@pytest.fixture()
def store(tmp_path: pathlib.Path) -> Store:
    s = Store(tmp_path / "plateau.db")
    s.put_trunk(Trunk(name="carrier", host="127.0.0.1"))
    acd.put_queue(s, QueueConfig(name="sales", number="6001"))
    dstore.put_campaign(s, CampaignConfig(name="winter", queue="sales", trunk="carrier", max_attempts=2,
                                          retry_minutes={"no-answer": 30, "busy": 5}))
    return s


def test_a_campaign_needs_its_queue_and_trunk(store: Store) -> None:
    with pytest.raises(ConfigError, match="no queue 'nope'"):
        dstore.put_campaign(store, CampaignConfig(name="x", queue="nope", trunk="carrier"))
    assert dstore.get_campaign(store, "winter") is not None
    assert dstore.get_campaign(store, "winter").retry_minutes == {"no-answer": 30, "busy": 5}  # type: ignore[union-attr]
    dstore.set_campaign_state(store, "winter", "running")
    assert dstore.get_campaign(store, "winter").state == "running"  # type: ignore[union-attr]


def test_leads_retry_by_rule_then_run_out(store: Store) -> None:
    campaign = dstore.get_campaign(store, "winter")
    assert campaign is not None
    leads, report = _read("Phone;Prénom\n0612345678;Anne\n0698765432;Bruno\n")
    list_id = dstore.add_list(store, "winter", "november", leads, report, by="admin", now=1000.0)
    assert dstore.lead_lists(store, "winter")[0]["report"]["imported"] == 2
    assert dstore.campaign_numbers(store, "winter") == {"+33612345678", "+33698765432"}
    first = dstore.due_leads(store, "winter", now=1000.0, limit=10)[0]
    assert (first.list_id, first.fields) == (list_id, {"first_name": "Anne"})
    attempt = dstore.start_attempt(store, first, "call-1", now=1000.0)
    assert dstore.get_lead(store, first.id).status == "dialing"  # type: ignore[union-attr]
    assert [lead.id for lead in dstore.due_leads(store, "winter", 1000.0, 10)] != [first.id]
    after = dstore.finish_attempt(store, attempt, "no-answer", campaign, now=1010.0)
    assert (after.status, after.next_at, after.attempts) == ("retry", 1010.0 + 1800, 1)
    assert first.id not in [lead.id for lead in dstore.due_leads(store, "winter", 1100.0, 10)]
    assert dstore.due_leads(store, "winter", 2810.0, 1)[0].id == first.id  # retries before new leads
    attempt = dstore.start_attempt(store, after, "call-2", now=2810.0)
    assert dstore.finish_attempt(store, attempt, "no-answer", campaign, now=2820.0).status == "exhausted"
    assert dstore.number_attempts_since(store, "+33612345678", 0.0) == 2
    assert dstore.number_attempts_since(store, "+33612345678", 2000.0) == 1


def test_disposition_callback_and_dnc(store: Store) -> None:
    campaign = dstore.get_campaign(store, "winter")
    assert campaign is not None
    leads, report = _read("Phone\n0612345678\n0698765432\n", mapping={"number": "Phone"})
    dstore.add_list(store, "winter", "l", leads, report, now=1000.0)
    a, b = dstore.due_leads(store, "winter", 1000.0, 10)
    attempt = dstore.start_attempt(store, a, "c1", 1000.0)
    dstore.mark_attempt(store, attempt, answered_at=1005.0, connected_at=1005.5, agent="2001", amd="HUMAN")
    dstore.finish_attempt(store, attempt, "connected", campaign, 1100.0)
    with pytest.raises(ConfigError, match="not one of"):
        dstore.set_disposition(store, a.id, campaign, "maybe")
    with pytest.raises(ConfigError, match="in the past"):
        dstore.set_disposition(store, a.id, campaign, "callback", callback_at=900.0, now=1100.0)
    lead = dstore.set_disposition(store, a.id, campaign, "callback", callback_at=5000.0, agent="2001", now=1100.0)
    assert (lead.status, lead.next_at, lead.callback_agent) == ("callback", 5000.0, "2001")
    assert dstore.abandon_counts(store, "winter", 0.0) == (1, 0)
    # The number joins the DNC list: its open lead ends at once, in every campaign.
    assert dstore.add_dnc(store, [b.number], "agent", by="2001", now=1200.0) == 1
    assert dstore.add_dnc(store, [b.number], "agent", now=1200.0) == 0
    assert dstore.get_lead(store, b.id).status == "dnc"  # type: ignore[union-attr]
    assert dstore.is_dnc(store, b.number) and b.number in dstore.dnc_numbers(store)
    assert [lead.id for lead in dstore.due_leads(store, "winter", 6000.0, 10)] == [a.id]
    dstore.audit(store, "refused", compliance.DNC, campaign="winter", lead_id=b.id, number=b.number, now=1201.0)
    assert dstore.audit_log(store, "winter")[0]["reason"] == "dnc"
    assert dstore.lead_counts(store, "winter")["dnc"] == 1


@pytest.mark.parametrize("module", ["appliance.dialer.campaign", "appliance.dialer.compliance",
                                    "appliance.store.dialer", "appliance.store"])
def test_each_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    # appliance.dialer.campaign and appliance.store import each other's modules: whichever a
    # process imports first (the web UI, the engine, a CLI command) must load.
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
