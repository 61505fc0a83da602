"""Interactions and survey results in a real SQLite store: round trips, validation, FKs and KPIs."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.ivr.contacts import StoreContacts
from appliance.store import interactions as ix
from appliance.store.db import Store
from appliance.store.errors import ConfigError, StoreError

T0 = 1_700_000_000.0


def _contact(store: Store, number: str = "+33612345678") -> int:
    return int(StoreContacts(store).create(number).id)


# -- interactions ------------------------------------------------------------------------------------
def test_open_assign_update_round_trip(store: Store) -> None:
    cid = _contact(store)
    iid = ix.open_interaction(store, "+33612345678", "sales", "abc@10.0.0.1", T0, contact_id=cid,
                              ivr_path={"menu": "2", "account": "12345", "lang": "fr"})
    got = ix.get_interaction(store, iid)
    assert got is not None
    assert (got.contact_id, got.caller, got.queue, got.call_id, got.status, got.agent) == (
        cid, "+33612345678", "sales", "abc@10.0.0.1", "open", "")
    assert got.ivr_path == {"menu": "2", "account": "12345", "lang": "fr"}
    assert got.created_at == got.updated_at == T0
    ix.assign_agent(store, iid, "alice", T0 + 12)
    updated = ix.update_interaction(store, iid, at=T0 + 300, status="resolved", disposition="billing_q",
                                    notes="Refund issued.\nCustomer happy.")
    assert (updated.agent, updated.status, updated.disposition) == ("alice", "resolved", "billing_q")
    assert updated.notes == "Refund issued.\nCustomer happy." and updated.updated_at == T0 + 300
    assert updated.created_at == T0
    # Only the fields given change.
    again = ix.update_interaction(store, iid, at=T0 + 400, notes="Called back.")
    assert (again.status, again.disposition, again.notes) == ("resolved", "billing_q", "Called back.")
    assert ix.get_interaction(store, iid) == again
    assert ix.interaction_for_call(store, "abc@10.0.0.1") == again
    assert ix.interaction_for_call(store, "other@10.0.0.1") is None


def test_committed_before_return_seen_by_another_connection(store: Store, store_target: str | Path) -> None:
    iid = ix.open_interaction(store, "1002", "support", "cid-1", T0)
    ix.update_interaction(store, iid, at=T0 + 1, status="follow-up")
    other = Store(store_target)
    try:
        assert other.query("SELECT status FROM interactions WHERE id = ?", (iid,)) == [("follow-up",)]
    finally:
        other.close()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"status": "done"}, "interaction.status: 'done' is not one of open, resolved, closed, follow-up"),
    ({"disposition": "bad code"}, "interaction.disposition: 'bad code' is not a code"),
    ({"disposition": ""}, "interaction.disposition: '' is not a code"),
    ({"disposition": "x" * 33}, "interaction.disposition:"),
    ({"disposition": "ok\n"}, "interaction.disposition:"),  # '$' would let a trailing newline through
    ({"notes": "n" * 4001}, "interaction.notes: 4001 characters, at most 4000"),
    ({"notes": "a\x00b"}, "interaction.notes: contains a NUL character"),
])
def test_update_validation_names_the_field(store: Store, kwargs: dict[str, str], message: str) -> None:
    iid = ix.open_interaction(store, "1002", "support", "cid-1", T0)
    with pytest.raises(ConfigError) as err:
        ix.update_interaction(store, iid, at=T0 + 1, **kwargs)  # type: ignore[arg-type]
    assert str(err.value).startswith(message)
    got = ix.get_interaction(store, iid)
    assert got is not None and got.status == "open" and got.updated_at == T0  # nothing written


def test_limits_are_inclusive(store: Store) -> None:
    iid = ix.open_interaction(store, "1002", "support", "cid-1", T0)
    got = ix.update_interaction(store, iid, at=T0 + 1, disposition="A" * 32, notes="n" * 4000)
    assert got.disposition == "A" * 32 and len(got.notes) == 4000


def test_unknown_ids_raise_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="interaction 99 does not exist"):
        ix.update_interaction(store, 99, at=T0, status="closed")
    with pytest.raises(StoreError, match="interaction 99 does not exist"):
        ix.assign_agent(store, 99, "alice", T0)
    with pytest.raises(StoreError, match="interaction 99 does not exist"):
        ix.record_survey(store, "c", "q", "a", 5, None, None, T0, interaction_id=99)
    assert ix.get_interaction(store, 99) is None


def test_contact_foreign_key(store: Store) -> None:
    with pytest.raises(ConfigError, match="interaction.contact_id: contact 42 does not exist"):
        ix.open_interaction(store, "1002", "support", "cid-1", T0, contact_id=42)
    with pytest.raises(ConfigError, match="interaction.contact_id: expected an integer"):
        ix.open_interaction(store, "1002", "support", "cid-1", T0, contact_id="7")  # type: ignore[arg-type]
    # The database enforces it too, whoever writes.
    with pytest.raises(store.integrity_error), store.transaction():
        store.execute("INSERT INTO interactions (contact_id, caller, created_at, updated_at) VALUES (42, 'x', 0, 0)")
    # Deleting a contact keeps its interactions (history), unlinked.
    cid = _contact(store)
    iid = ix.open_interaction(store, "+33612345678", "sales", "cid-2", T0, contact_id=cid)
    with store.transaction():
        store.execute("DELETE FROM contacts WHERE id = ?", (cid,))
    got = ix.get_interaction(store, iid)
    assert got is not None and got.contact_id is None


def test_status_check_constraint_in_the_schema(store: Store) -> None:
    with pytest.raises(store.integrity_error), store.transaction():
        store.execute("INSERT INTO interactions (caller, status, created_at, updated_at) VALUES ('x', 'gone', 0, 0)")


def test_ivr_path_must_be_json(store: Store) -> None:
    with pytest.raises(ConfigError, match="interaction.ivr_path: not JSON-serialisable"):
        ix.open_interaction(store, "1002", "q", "c", T0, ivr_path={"when": object()})
    assert store.query("SELECT COUNT(*) FROM interactions") == [(0,)]


def test_history_for_contact_newest_first_with_limit(store: Store) -> None:
    cid = _contact(store)
    other = _contact(store, "+33700000000")
    ids = [ix.open_interaction(store, "+33612345678", "sales", f"c{i}", T0 + i, contact_id=cid) for i in range(5)]
    ix.open_interaction(store, "+33700000000", "sales", "x", T0 + 10, contact_id=other)
    assert [i.id for i in ix.interactions_for_contact(store, cid)] == ids[::-1]
    assert [i.id for i in ix.interactions_for_contact(store, cid, limit=2)] == ids[::-1][:2]
    assert ix.interactions_for_contact(store, 12345) == []


def test_latest_open_for_caller_links_a_callback(store: Store) -> None:
    first = ix.open_interaction(store, "1002", "support", "c1", T0)
    second = ix.open_interaction(store, "1002", "support", "c2", T0 + 60)
    ix.open_interaction(store, "1003", "support", "c3", T0 + 70)
    assert ix.latest_open_for_caller(store, "1002", 3600, now=T0 + 120).id == second  # type: ignore[union-attr]
    ix.update_interaction(store, second, at=T0 + 130, status="resolved")
    # The resolved one no longer links; the older open one does while inside the window.
    assert ix.latest_open_for_caller(store, "1002", 3600, now=T0 + 140).id == first  # type: ignore[union-attr]
    assert ix.latest_open_for_caller(store, "1002", 100, now=T0 + 140) is None  # touched 140 s ago
    ix.update_interaction(store, first, at=T0 + 200, status="follow-up")  # a promised call back
    got = ix.latest_open_for_caller(store, "1002", 100, now=T0 + 250)
    assert got is not None and got.id == first and got.status == "follow-up"
    ix.update_interaction(store, first, at=T0 + 300, status="closed")
    assert ix.latest_open_for_caller(store, "1002", 10_000, now=T0 + 301) is None
    assert ix.latest_open_for_caller(store, "9999", 10_000, now=T0 + 301) is None


# -- surveys -----------------------------------------------------------------------------------------
def test_record_survey_round_trip_and_interaction_link(store: Store) -> None:
    iid = ix.open_interaction(store, "1002", "support", "c1", T0)
    sid = ix.record_survey(store, "c1", "support", "alice", 5, 10, None, T0 + 5, interaction_id=iid)
    rows = ix.survey_results(store, T0, T0 + 10)
    assert rows == [ix.SurveyResult(sid, iid, "c1", "support", "alice", 5, 10, None, T0 + 5)]
    assert ix.survey_results(store, T0 + 5.5, T0 + 10) == []  # [start, end)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("csat", 0, "survey.csat: 0 is not from 1 to 5"),
    ("csat", 6, "survey.csat: 6 is not from 1 to 5"),
    ("nps", -1, "survey.nps: -1 is not from 0 to 10"),
    ("nps", 11, "survey.nps: 11 is not from 0 to 10"),
    ("ces", 0, "survey.ces: 0 is not from 1 to 7"),
    ("ces", 8, "survey.ces: 8 is not from 1 to 7"),
    ("csat", "5", "survey.csat: expected an integer from 1 to 5, got '5'"),
    ("nps", True, "survey.nps: expected an integer from 0 to 10, got True"),
])
def test_record_survey_rejects_out_of_range(store: Store, field: str, value: object, message: str) -> None:
    answers: dict[str, object] = {"csat": None, "nps": None, "ces": None, field: value}
    with pytest.raises(ConfigError) as err:
        ix.record_survey(store, "c1", "q", "a", at=T0, **answers)  # type: ignore[arg-type]
    assert str(err.value) == message
    assert store.query("SELECT COUNT(*) FROM survey_results") == [(0,)]


def test_survey_range_checks_in_the_schema(store: Store) -> None:
    for column, value in (("csat", 6), ("nps", 11), ("ces", 0)):
        with pytest.raises(store.integrity_error), store.transaction():
            store.execute(f"INSERT INTO survey_results ({column}, at) VALUES (?, 0)", (value,))
    with store.transaction():  # all unanswered is a valid row (the caller hung up at once)
        store.execute("INSERT INTO survey_results (csat, nps, ces, at) VALUES (NULL, NULL, NULL, 0)")


def test_kpis_worked_example(store: Store) -> None:
    # Ten surveys for "support", alice and bob; one caller answered nothing; one for "sales".
    rows = [  # (agent, csat, nps, ces)
        ("alice", 5, 10, 2), ("alice", 4, 9, 3), ("alice", 3, 7, None), ("alice", 2, 6, 5),
        ("bob", 1, 0, 7), ("bob", 5, None, 1), ("bob", None, 8, None), ("bob", 4, 9, 2),
        ("bob", None, None, None),
    ]
    for i, (agent, csat, nps, ces) in enumerate(rows):
        ix.record_survey(store, f"c{i}", "support", agent, csat, nps, ces, T0 + i)
    ix.record_survey(store, "s1", "sales", "carol", 1, 0, 7, T0 + 1)
    k = ix.survey_kpis(store, T0, T0 + 100, queue="support")
    # CSAT answers 5,4,3,2,1,5,4: mean 24/7, 4 of 7 are 4-5.
    assert (k.surveys, k.responses, k.csat_answers) == (9, 8, 7)
    assert k.csat_avg == pytest.approx(24 / 7) and k.csat_pct == pytest.approx(400 / 7)
    # NPS answers 10,9,7,6,0,8,9: promoters 3, detractors 2, of 7 -> (3-2)/7.
    assert k.nps_answers == 7 and k.nps == pytest.approx(100 / 7)
    # CES answers 2,3,5,7,1,2: mean 20/6.
    assert k.ces_answers == 6 and k.ces_avg == pytest.approx(20 / 6)
    alice = ix.survey_kpis(store, T0, T0 + 100, queue="support", agent="alice")
    assert alice.responses == 4 and alice.csat_avg == pytest.approx(3.5) and alice.csat_pct == 50.0
    assert alice.nps == pytest.approx(25.0)  # promoters 2, detractors 1, of 4
    assert ix.survey_kpis(store, T0, T0 + 100).surveys == 10
    assert ix.survey_kpis(store, T0, T0 + 100, agent="carol").nps == -100.0
    empty = ix.survey_kpis(store, T0 + 1000, T0 + 2000)
    assert empty == ix.SurveyKpis()  # no answers: None, not 0 (a 0 NPS would be a real score)


# -- the pure KPI function ---------------------------------------------------------------------------
def _row(csat: int | None, nps: int | None, ces: int | None) -> ix.SurveyResult:
    return ix.SurveyResult(0, None, "", "", "", csat, nps, ces, 0.0)


@given(st.lists(st.tuples(st.none() | st.integers(1, 5), st.none() | st.integers(0, 10),
                          st.none() | st.integers(1, 7)), max_size=60))
def test_kpis_stay_in_range(answers: list[tuple[int | None, int | None, int | None]]) -> None:
    k = ix.compute_survey_kpis(_row(*a) for a in answers)
    nps = [a[1] for a in answers if a[1] is not None]
    assert k.surveys == len(answers) and k.nps_answers == len(nps)
    if nps:
        assert k.nps is not None and -100.0 <= k.nps <= 100.0
    else:
        assert k.nps is None
    if k.csat_avg is not None:
        assert 1.0 <= k.csat_avg <= 5.0 and k.csat_pct is not None and 0.0 <= k.csat_pct <= 100.0
    if k.ces_avg is not None:
        assert 1.0 <= k.ces_avg <= 7.0


@given(st.lists(st.integers(9, 10), min_size=1, max_size=30), st.lists(st.integers(0, 6), min_size=1, max_size=30))
def test_nps_all_promoters_is_100_and_all_detractors_is_minus_100(promoters: list[int], detractors: list[int]) -> None:
    assert ix.compute_survey_kpis(_row(None, v, None) for v in promoters).nps == 100.0
    assert ix.compute_survey_kpis(_row(None, v, None) for v in detractors).nps == -100.0
    # Equal numbers of each cancel out, whatever passives (7-8) are added.
    n = min(len(promoters), len(detractors))
    mixed = [*promoters[:n], *detractors[:n], 7, 8]
    assert ix.compute_survey_kpis(_row(None, v, None) for v in mixed).nps == 0.0
