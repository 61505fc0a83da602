"""The store's paged reads (appliance/store/paging.py) on SQLite and PostgreSQL alike: the same
page, the same order (the tie-break included), the same count, a sort key outside the whitelist refused."""
from __future__ import annotations

import pytest

from appliance.store import accounts, dialer, reports
from appliance.store.db import Store
from appliance.store.errors import StoreError
from appliance.store.paging import PageQuery, fetch_page, like


def test_call_pages_sort_page_and_count(store: Store) -> None:
    with store.transaction():
        for i in range(40):
            cdr = store.cdr_open(f"c{i}", f"+4930{i:04d}", "", "100_%", "inbound", 1000.0 + i)
            store.cdr_answer(cdr, 1001.0 + i)
            store.cdr_close(cdr, 1001.0 + i + i % 5, "ANSWERED", None)  # durations tie in fives
    page = reports.calls_page(store, 0, 10**6, PageQuery("duration", True, 0, 10))
    assert page.total == 40 and [c.duration for c in page.rows] == [5.0] * 8 + [4.0] * 2
    assert [c.id for c in page.rows[:8]] == sorted((c.id for c in page.rows[:8]), reverse=True)  # tie-break
    rest = reports.calls_page(store, 0, 10**6, PageQuery("duration", True, 10, 10))
    assert not {c.id for c in rest.rows} & {c.id for c in page.rows}
    found = reports.calls_page(store, 0, 10**6, PageQuery("caller", False, 0, 50), number="+4930003")
    assert [c.caller for c in found.rows] == [f"+4930{i:04d}" for i in range(30, 40)]
    # LIKE's wildcards are taken literally: "0_%" is in "100_%", "1_0" is nowhere (as a wildcard it matches "100").
    assert reports.calls_page(store, 0, 10**6, PageQuery("start", False, 0, 5), number="0_%").total == 40
    assert reports.calls_page(store, 0, 10**6, PageQuery("start", False, 0, 5), number="1_0").total == 0


def test_dnc_and_audit_pages(store: Store) -> None:
    dialer.add_dnc(store, ["+33612345678", "+33698765432"], "admin", note="Écrit 100%", by="zoé")
    dialer.add_dnc(store, ["+442079460958"], "admin", note="phone", by="al")
    page = dialer.dnc_page(store, PageQuery("number", False, 0, 2), "100%")
    assert page.total == 2 and [e.number for e in page.rows] == ["+33612345678", "+33698765432"]
    assert dialer.dnc_page(store, PageQuery("by", True, 0, 25)).rows[0].added_by == "zoé"
    for i in range(5):
        accounts.add_audit(store, 10.0 + i, "boss", f"user.x{i}", "t", None, None)
    audit = accounts.audit_page(store, PageQuery("action", True, 1, 2), action="user")
    assert audit.total == 5 and [r.action for r in audit.rows] == ["user.x3", "user.x2"]


def test_a_sort_outside_the_whitelist_or_a_page_out_of_range_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="cannot sort by"):
        reports.calls_page(store, 0, 1, PageQuery("c.id; DROP TABLE cdr", False))
    with pytest.raises(StoreError, match="page out of range"):
        fetch_page(store, "number", " FROM dnc", [], dialer.DNC_SORTS, PageQuery("number", False, 0, 10**6),
                   lambda r: r)
    assert like("a_b%c\\") == "%a\\_b\\%c\\\\%"
