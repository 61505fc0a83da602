"""Outbound rows in the store: campaigns, prospect lists and leads, dial attempts, the DNC list, the audit log.

Module functions over a `Store` (like acd.py); every write is committed before the function
returns, so a lead's attempt count and the audit line of a decision survive a crash right after.
A campaign's settings are one validated JSON document (appliance/dialer/campaign.py); its run
state is a column of its own because the dialer and the admin change it independently.
"""
from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

# The module, not its names: appliance.dialer.campaign imports appliance.store (errors, validation),
# whose __init__ imports this module, so names would not exist yet when campaign is imported first.
from appliance.dialer import campaign as cmp
from appliance.dialer.prospects import ImportReport, Lead
from appliance.store.db import Store
from appliance.schema.errors import invalid
from appliance.store.errors import ConfigError, StoreError
from appliance.store.paging import Page, PageQuery, Sorts, contains, fetch_page, like

LEAD_STATUSES = ("new", "retry", "callback", "dialing", "done", "dnc", "exhausted")
DUE_STATUSES = ("new", "retry", "callback")
DNC_SOURCES = ("import", "agent", "opt-out", "admin", "api")
_LEAD_COLUMNS = ("id", "list_id", "campaign", "number", "timezone", "fields", "status", "attempts", "last_outcome",
                 "disposition", "next_at", "callback_agent", "updated_at")


@dataclass(frozen=True)
class LeadRecord:
    """A lead as stored; `fields` is its card for the screen pop."""

    id: int
    list_id: int
    campaign: str
    number: str
    timezone: str
    fields: dict[str, str]
    status: str
    attempts: int
    last_outcome: str
    disposition: str
    next_at: float | None
    callback_agent: str
    updated_at: float


def _lead(row: Sequence[Any]) -> LeadRecord:
    values = list(row)
    values[5] = json.loads(values[5])
    return LeadRecord(*values)


# -- campaigns -------------------------------------------------------------------------------
def put_campaign(store: Store, campaign: cmp.CampaignConfig, now: float | None = None) -> None:
    """Create or update a campaign; its queue and trunk must exist."""
    cmp.check_campaign(campaign)
    now = time.time() if now is None else now
    config = dataclasses.asdict(campaign)
    with store.transaction():
        store.config_changed()
        if not store.query("SELECT 1 FROM queues WHERE name = ?", (campaign.queue,)):
            raise invalid(f"there is no queue {campaign.queue!r}", "campaign", "queue")
        if not store.query("SELECT 1 FROM trunks WHERE name = ?", (campaign.trunk,)):
            raise invalid(f"there is no trunk {campaign.trunk!r}", "campaign", "trunk")
        store.execute(
            "INSERT INTO campaigns (name, config, state, created_at, updated_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET config = excluded.config, state = excluded.state,"
            " updated_at = excluded.updated_at",
            (campaign.name, json.dumps(config, sort_keys=True), campaign.state, now, now))


def _campaign(config: str, state: str) -> cmp.CampaignConfig:
    data = json.loads(config)
    data["state"] = state
    return cmp.CampaignConfig(**data)


def campaigns(store: Store) -> list[cmp.CampaignConfig]:
    return [_campaign(c, s) for c, s in store.query("SELECT config, state FROM campaigns ORDER BY name")]


def get_campaign(store: Store, name: str) -> cmp.CampaignConfig | None:
    rows = store.query("SELECT config, state FROM campaigns WHERE name = ?", (name,))
    return _campaign(*rows[0]) if rows else None


def set_campaign_state(store: Store, name: str, state: str, now: float | None = None) -> None:
    if state not in cmp.STATES:
        raise ConfigError(f"campaign.state: {state!r} is not one of {', '.join(cmp.STATES)}")
    with store.transaction():
        store.config_changed()
        cur = store.execute("UPDATE campaigns SET state = ?, updated_at = ? WHERE name = ?",
                          (state, time.time() if now is None else now, name))
        if cur.rowcount == 0:
            raise StoreError(f"no campaign {name!r}")


def delete_campaign(store: Store, name: str) -> bool:
    """Delete a campaign with its lists and leads (attempts and audit lines stay: they are history)."""
    with store.transaction():
        store.config_changed()
        return store.execute("DELETE FROM campaigns WHERE name = ?", (name,)).rowcount > 0


# -- lists and leads -------------------------------------------------------------------------
def campaign_numbers(store: Store, campaign: str) -> set[str]:
    return {r[0] for r in store.query("SELECT number FROM leads WHERE campaign = ?", (campaign,))}


def add_list(store: Store, campaign: str, name: str, leads: Iterable[Lead], report: ImportReport, *,
             by: str = "", now: float | None = None) -> int:
    """Store an imported list with its leads and its report, all or nothing; returns the list id."""
    now = time.time() if now is None else now
    with store.transaction():
        if not store.query("SELECT 1 FROM campaigns WHERE name = ?", (campaign,)):
            raise StoreError(f"no campaign {campaign!r}")
        cur = store.execute("INSERT INTO lead_lists (campaign, name, imported_at, imported_by, report)"
                            " VALUES (?, ?, ?, ?, ?) RETURNING id",
                            (campaign, name, now, by, json.dumps(report.as_dict())))
        list_id = int(cur.fetchone()[0])
        for lead in leads:
            store.execute("INSERT INTO leads (list_id, campaign, number, timezone, fields, updated_at)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        (list_id, campaign, lead.number, lead.timezone,
                         json.dumps(lead.fields, ensure_ascii=False), now))
    return list_id


def lead_lists(store: Store, campaign: str) -> list[dict[str, Any]]:
    rows = store.query("SELECT l.id, l.name, l.imported_at, l.imported_by, l.report, COUNT(d.id)"
                        " FROM lead_lists l LEFT JOIN leads d ON d.list_id = l.id WHERE l.campaign = ?"
                        " GROUP BY l.id ORDER BY l.id", (campaign,))
    return [{"id": r[0], "name": r[1], "imported_at": r[2], "imported_by": r[3], "report": json.loads(r[4]),
             "leads": r[5]} for r in rows]


def get_lead(store: Store, lead_id: int) -> LeadRecord | None:
    rows = store.query(f"SELECT {', '.join(_LEAD_COLUMNS)} FROM leads WHERE id = ?", (lead_id,))
    return _lead(rows[0]) if rows else None


LEAD_SORTS = Sorts({"id": "id", "number": "number", "status": "status", "attempts": "attempts",
                    "updated": "updated_at", "next": "next_at"}, default="id", default_descending=False, tiebreak="id")


def leads_page(store: Store, campaign: str, q: PageQuery, text: str = "", status: str = "") -> Page[LeadRecord]:
    """One page of a campaign's leads sorted by `q` (LEAD_SORTS); `text` is found in the number or
    the card (a name, a customer reference), `status` matches exactly."""
    where, params = " FROM leads WHERE campaign = ?", [campaign]
    if text:
        where += " AND " + contains(("number", "fields"))
        params += [like(text)] * 2
    if status:
        where += " AND status = ?"
        params.append(status)
    return fetch_page(store, ", ".join(_LEAD_COLUMNS), where, params, LEAD_SORTS, q, _lead)


def update_lead(store: Store, lead_id: int, *, number: str, status: str, timezone: str, fields: dict[str, str],
                now: float | None = None) -> bool:
    """An admin's edit of a lead; False when another lead of the campaign has `number` already.
    A status the dialer will pick up again (new, retry) is due at once."""
    with store.transaction():
        lead = get_lead(store, lead_id)
        if lead is None:
            raise StoreError(f"no lead {lead_id}")
        clash = store.query("SELECT id FROM leads WHERE campaign = ? AND number = ? AND id <> ?",
                            (lead.campaign, number, lead_id))
        if clash:
            return False
        next_at = lead.next_at if status in ("callback",) else None
        store.execute("UPDATE leads SET number = ?, status = ?, timezone = ?, fields = ?, next_at = ?, updated_at = ?"
                      " WHERE id = ?", (number, status, timezone, json.dumps(fields, ensure_ascii=False), next_at,
                                        time.time() if now is None else now, lead_id))
    return True


def due_leads(store: Store, campaign: str, now: float, limit: int) -> list[LeadRecord]:
    """Leads ready to dial: agents' callbacks first (the customer asked for that time), then retries, then new."""
    rows = store.query(
        f"SELECT {', '.join(_LEAD_COLUMNS)} FROM leads WHERE campaign = ? AND status IN ('new', 'retry', 'callback')"
        " AND (next_at IS NULL OR next_at <= ?)"
        " ORDER BY CASE status WHEN 'callback' THEN 0 WHEN 'retry' THEN 1 ELSE 2 END, next_at, id LIMIT ?",
        (campaign, now, limit))
    return [_lead(r) for r in rows]


def lead_counts(store: Store, campaign: str) -> dict[str, int]:
    rows = store.query("SELECT status, COUNT(*) FROM leads WHERE campaign = ? GROUP BY status", (campaign,))
    return {status: 0 for status in LEAD_STATUSES} | {s: n for s, n in rows}


def postpone_lead(store: Store, lead_id: int, until: float | None, status: str, now: float) -> None:
    """Move a lead's next try (a window not yet open) or end it (`until` None with status dnc/exhausted)."""
    if status not in LEAD_STATUSES:
        raise StoreError(f"{status!r} is not a lead status")
    with store.transaction():
        store.execute("UPDATE leads SET status = ?, next_at = ?, updated_at = ? WHERE id = ?",
                    (status, until, now, lead_id))


# -- attempts ----------------------------------------------------------------------------------
def start_attempt(store: Store, lead: LeadRecord, call_id: str, now: float) -> int:
    """A call is being placed to the lead: count the try before the first packet leaves."""
    with store.transaction():
        store.execute("UPDATE leads SET status = 'dialing', attempts = attempts + 1, updated_at = ? WHERE id = ?",
                    (now, lead.id))
        cur = store.execute("INSERT INTO dial_attempts (campaign, lead_id, number, call_id, placed_at)"
                          " VALUES (?, ?, ?, ?, ?) RETURNING id", (lead.campaign, lead.id, lead.number, call_id, now))
        return int(cur.fetchone()[0])


def mark_attempt(store: Store, attempt_id: int, *, answered_at: float | None = None,
                 connected_at: float | None = None, agent: str | None = None, amd: str | None = None) -> None:
    """Record what happened so far on a live attempt (answer, AMD verdict, agent connected)."""
    sets, values = [], []
    for column, value in (("answered_at", answered_at), ("connected_at", connected_at), ("agent", agent),
                          ("amd", amd)):
        if value is not None:
            sets.append(f"{column} = ?")
            values.append(value)
    if sets:
        with store.transaction():
            store.execute(f"UPDATE dial_attempts SET {', '.join(sets)} WHERE id = ?", (*values, attempt_id))


def finish_attempt(store: Store, attempt_id: int, outcome: str, campaign: cmp.CampaignConfig, now: float) -> LeadRecord:
    """Close an attempt and move its lead on: retry after the rule's delay, or end it; returns the lead."""
    with store.transaction():
        row = store.query("SELECT lead_id FROM dial_attempts WHERE id = ?", (attempt_id,))
        if not row:
            raise StoreError(f"no dial attempt {attempt_id}")
        store.execute("UPDATE dial_attempts SET outcome = ?, ended_at = ? WHERE id = ?", (outcome, now, attempt_id))
        lead = get_lead(store, row[0][0]) if row[0][0] is not None else None
        if lead is None:
            raise StoreError(f"the lead of attempt {attempt_id} is gone")
        status, next_at = lead.status, lead.next_at
        if outcome == "opt-out":
            status, next_at = "dnc", None
        elif lead.status == "dialing":
            if outcome in cmp.RETRYABLE and outcome in campaign.retry_minutes and lead.attempts < campaign.max_attempts:
                status, next_at = "retry", now + 60.0 * campaign.retry_minutes[outcome]
            elif outcome in cmp.RETRYABLE and lead.attempts >= campaign.max_attempts:
                status, next_at = "exhausted", None
            else:
                status, next_at = "done", None
        store.execute("UPDATE leads SET status = ?, next_at = ?, last_outcome = ?, updated_at = ? WHERE id = ?",
                    (status, next_at, outcome, now, lead.id))
        updated = get_lead(store, lead.id)
    assert updated is not None  # the row was just updated inside this transaction
    return updated


def set_disposition(store: Store, lead_id: int, campaign: cmp.CampaignConfig, code: str, *,
                    callback_at: float | None = None, agent: str = "", now: float | None = None) -> LeadRecord:
    """The agent's disposition of a lead; `callback_at` schedules a personal callback at the lead's request."""
    now = time.time() if now is None else now
    if code not in campaign.dispositions:
        raise invalid(f"{code!r} is not one of {', '.join(campaign.dispositions)}", "disposition")
    if callback_at is not None and callback_at <= now:
        raise invalid("the callback time is in the past", "callback_at")
    with store.transaction():
        lead = get_lead(store, lead_id)
        if lead is None or lead.campaign != campaign.name:
            raise StoreError(f"no lead {lead_id} in campaign {campaign.name!r}")
        if callback_at is not None:
            status, next_at = "callback", callback_at
        elif lead.status == "dnc":
            status, next_at = "dnc", None
        else:
            status, next_at = "done", None
        store.execute("UPDATE leads SET disposition = ?, status = ?, next_at = ?, callback_agent = ?, updated_at = ?"
                    " WHERE id = ?", (code, status, next_at, agent if callback_at is not None else "", now, lead_id))
        updated = get_lead(store, lead_id)
    assert updated is not None
    return updated


def number_attempts_since(store: Store, number: str, since: float) -> int:
    """Tries to `number` by any campaign since `since`: the per-number limit counts across campaigns."""
    return int(store.query("SELECT COUNT(*) FROM dial_attempts WHERE number = ? AND placed_at >= ?",
                            (number, since))[0][0])


@dataclass(frozen=True)
class AttemptCounts:
    """A campaign's dial attempts over a period: placed, answered (by anyone), abandoned."""

    placed: int
    answered: int
    abandoned: int


def attempt_counts_since(store: Store, campaign: str, since: float) -> AttemptCounts:
    """The campaign's attempts placed since `since` (the campaigns API's "today" figures)."""
    row = store.query(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN answered_at IS NOT NULL THEN 1 ELSE 0 END), 0),"
        " COALESCE(SUM(CASE WHEN outcome = 'abandoned' THEN 1 ELSE 0 END), 0)"
        " FROM dial_attempts WHERE campaign = ? AND placed_at >= ?", (campaign, since))[0]
    return AttemptCounts(int(row[0]), int(row[1]), int(row[2]))


@dataclass(frozen=True)
class HourAnswers:
    """Attempts a person answered in one hour (`hour`: epoch seconds // 3600), and how many were abandoned."""

    hour: int
    answered: int
    abandoned: int


def answers_by_hour(store: Store, campaign: str, since: float) -> list[HourAnswers]:
    """What `abandon_counts` counts, hour by hour since `since`, oldest first: the abandon
    ledger's history after a restart."""
    # Grouped in Python: SQLite's CAST(x AS INTEGER) truncates where PostgreSQL's rounds, and
    # FLOOR needs SQLite's optional math functions (tests/unit/test_portable_sql.py).
    rows = store.query(
        "SELECT placed_at, outcome FROM dial_attempts"
        " WHERE campaign = ? AND placed_at >= ? AND answered_at IS NOT NULL AND outcome != 'machine'",
        (campaign, since))
    hours: dict[int, list[int]] = {}
    for placed_at, outcome in rows:
        counts = hours.setdefault(int(placed_at // 3600), [0, 0])
        counts[0] += 1
        counts[1] += outcome == "abandoned"
    return [HourAnswers(h, a, b) for h, (a, b) in sorted(hours.items())]


@dataclass(frozen=True)
class AttemptTimes:
    """When a finished attempt was placed, answered, connected to an agent and ended, and how it ended."""

    placed_at: float
    answered_at: float | None
    connected_at: float | None
    ended_at: float | None
    outcome: str


def recent_outcomes(store: Store, campaign: str, limit: int) -> list[AttemptTimes]:
    """The campaign's last `limit` finished attempts, oldest first: the pacing stats' history."""
    rows = store.query(
        "SELECT placed_at, answered_at, connected_at, ended_at, outcome FROM dial_attempts"
        " WHERE campaign = ? AND outcome IS NOT NULL ORDER BY id DESC LIMIT ?", (campaign, limit))
    return [AttemptTimes(*r) for r in reversed(rows)]


def abandon_counts(store: Store, campaign: str, since: float) -> tuple[int, int]:
    """(answered by a person, abandoned) since `since`: the abandon rate's denominator and numerator.

    Machines do not count (the FTC counts calls answered by a person); an abandoned call is one a
    person answered and no agent took within the campaign's threshold.
    """
    row = store.query(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN outcome = 'abandoned' THEN 1 ELSE 0 END), 0) FROM dial_attempts"
        " WHERE campaign = ? AND placed_at >= ? AND answered_at IS NOT NULL AND outcome != 'machine'",
        (campaign, since))[0]
    return int(row[0]), int(row[1])


# -- do-not-call -----------------------------------------------------------------------------
def add_dnc(store: Store, numbers: Iterable[str], source: str, *, note: str = "", by: str = "",
            now: float | None = None) -> int:
    """Put E.164 numbers on the DNC list and end their open leads in every campaign; returns how many were new."""
    if source not in DNC_SOURCES:
        raise StoreError(f"{source!r} is not a DNC source")
    now = time.time() if now is None else now
    added = 0
    with store.transaction():
        for number in numbers:
            cur = store.execute("INSERT INTO dnc (number, source, note, added_by, added_at) VALUES (?, ?, ?, ?, ?)"
                              " ON CONFLICT (number) DO NOTHING", (number, source, note, by, now))
            added += cur.rowcount
            store.execute("UPDATE leads SET status = 'dnc', next_at = NULL, updated_at = ?"
                        " WHERE number = ? AND status IN ('new', 'retry', 'callback')", (now, number))
    return added


def remove_dnc(store: Store, number: str) -> bool:
    with store.transaction():
        return store.execute("DELETE FROM dnc WHERE number = ?", (number,)).rowcount > 0


def is_dnc(store: Store, number: str) -> bool:
    return bool(store.query("SELECT 1 FROM dnc WHERE number = ?", (number,)))


@dataclass(frozen=True)
class DncEntry:
    """A number on the do-not-call list: where it came from, why, who added it and when."""

    number: str
    source: str
    note: str
    added_by: str
    added_at: float


def dnc_entry(store: Store, number: str) -> DncEntry | None:
    rows = store.query("SELECT number, source, note, added_by, added_at FROM dnc WHERE number = ?", (number,))
    return DncEntry(*rows[0]) if rows else None


def dnc_numbers(store: Store) -> set[str]:
    return {r[0] for r in store.query("SELECT number FROM dnc")}


def dnc_count(store: Store) -> int:
    return int(store.query("SELECT COUNT(*) FROM dnc")[0][0])


def dnc_entries(store: Store, limit: int = 500) -> list[dict[str, Any]]:
    rows = store.query("SELECT number, source, note, added_by, added_at FROM dnc ORDER BY added_at DESC LIMIT ?",
                        (limit,))
    return [dict(zip(("number", "source", "note", "added_by", "added_at"), r)) for r in rows]


DNC_SORTS = Sorts({"added": "added_at", "number": "number", "source": "source", "by": "added_by", "note": "note"},
                  default="added", default_descending=True, tiebreak="number")


def dnc_page(store: Store, q: PageQuery, text: str = "") -> Page[DncEntry]:
    """One page of the do-not-call list sorted by `q` (DNC_SORTS); `text` is found in the number,
    the note or who added it."""
    where, params = " FROM dnc", []
    if text:
        where += " WHERE " + contains(("number", "note", "added_by"))
        params = [like(text)] * 3
    return fetch_page(store, "number, source, note, added_by, added_at", where, params, DNC_SORTS, q,
                      lambda r: DncEntry(*r))


# -- audit -----------------------------------------------------------------------------------
def audit(store: Store, decision: str, reason: str, *, campaign: str = "", lead_id: int | None = None,
          number: str = "", detail: str = "", now: float | None = None) -> None:
    """One dialer decision (dialled, refused and why, paced, abandoned...), durable before it acts."""
    with store.transaction():
        store.execute("INSERT INTO dialer_audit (at, campaign, lead_id, number, decision, reason, detail)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (time.time() if now is None else now, campaign, lead_id, number, decision, reason, detail))


def audit_log(store: Store, campaign: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    where, params = ("WHERE campaign = ?", [campaign]) if campaign else ("", [])
    rows = store.query(f"SELECT id, at, campaign, lead_id, number, decision, reason, detail FROM dialer_audit {where}"
                        " ORDER BY id DESC LIMIT ?", (*params, limit))
    return [dict(zip(("id", "at", "campaign", "lead_id", "number", "decision", "reason", "detail"), r))
            for r in rows]
