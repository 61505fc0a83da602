"""Queue log rows and the KPIs computed from them, checked against hand-worked figures."""
from __future__ import annotations


import pytest

from appliance.store.db import Store
from appliance.store.errors import StoreError
from appliance.store.queue_log import QueueEvent, kpis, record

T0 = 1_800_000_000.0


def _day(store: Store) -> None:
    log = [
        QueueEvent(T0 - 10, "AGENT_LOGIN", agent="alice"),
        QueueEvent(T0 - 10, "AGENT_LOGIN", agent="bob"),
        # call 1: answered by alice after 5 s, 60 s talk, 15 s wrap-up
        QueueEvent(T0, "ENTER", "c1", "sales", caller="+331", position=1),
        QueueEvent(T0 + 5, "CONNECT", "c1", "sales", "alice", "+331", wait_s=5),
        QueueEvent(T0 + 65, "COMPLETE", "c1", "sales", "alice", "+331", talk_s=60, wrap_s=15),
        # call 2: bob lets it ring out, then answers after 30 s (outside a 20 s service level)
        QueueEvent(T0 + 100, "ENTER", "c2", "sales", caller="+332", position=1),
        QueueEvent(T0 + 110, "RINGNOANSWER", "c2", "sales", "bob", "+332"),
        QueueEvent(T0 + 130, "CONNECT", "c2", "sales", "bob", "+332", wait_s=30),
        QueueEvent(T0 + 250, "COMPLETE", "c2", "sales", "bob", "+332", talk_s=120, wrap_s=0),
        # call 3: abandoned at position 2 after 40 s
        QueueEvent(T0 + 200, "ENTER", "c3", "sales", caller="+333", position=2),
        QueueEvent(T0 + 240, "ABANDON", "c3", "sales", caller="+333", position=2, wait_s=40),
        # call 4: another queue, must not count for "sales"
        QueueEvent(T0 + 300, "ENTER", "c4", "support", caller="+334", position=1),
        QueueEvent(T0 + 390, "AGENT_LOGOUT", agent="alice"),
    ]
    for ev in log:
        record(store, ev)


def test_kpis_for_one_queue(store: Store) -> None:
    _day(store)
    k = kpis(store, T0, T0 + 400, queue="sales", sl_seconds=20)
    assert (k.offered, k.answered, k.abandoned, k.missed, k.ring_no_answer) == (3, 2, 1, 1, 1)
    assert k.service_level == pytest.approx(100 / 3)  # only call 1 within 20 s, of 3 offered
    assert k.asa_s == pytest.approx(17.5)
    assert k.att_s == pytest.approx(90.0) and k.aht_s == pytest.approx(97.5)
    assert k.abandon_rate == pytest.approx(100 / 3)
    assert k.calls_per_agent == {"alice": 1, "bob": 1}


def test_occupancy_counts_logged_in_time(store: Store) -> None:
    _day(store)
    k = kpis(store, T0 - 10, T0 + 400, sl_seconds=20)
    # alice: 75 s handling over 400 s logged in; bob: 120 s over 410 s (still logged in at the end)
    assert k.occupancy["alice"] == pytest.approx(100 * 75 / 400)
    assert k.occupancy["bob"] == pytest.approx(100 * 120 / 410)


def test_first_contact_resolution_looks_72_hours_ahead(store: Store) -> None:
    _day(store)
    record(store, QueueEvent(T0 + 3600, "ENTER", "c5", "sales", caller="+331"))  # +331 calls back
    record(store, QueueEvent(T0 + 80 * 3600, "ENTER", "c6", "sales", caller="+332"))  # after 72 h
    k = kpis(store, T0, T0 + 400, queue="sales")
    assert k.fcr == pytest.approx(50.0)  # +332 resolved, +331 not


def test_unknown_event_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="not one of"):
        record(store, QueueEvent(T0, "ENTERQUEUE"))


def test_empty_period_has_no_ratios(store: Store) -> None:
    k = kpis(store, T0, T0 + 10)
    assert k.offered == 0 and k.service_level is None and k.asa_s is None and k.fcr is None
