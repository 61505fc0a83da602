"""Web users and the audit log (migration 6), as typed rows.

web/accounts.py owns the rules (password hashing and strength, lockout policy, roles, the last
admin); this module is their SQL. Module functions over a `Store`, like contacts.py; the SQL is
written for SQLite and PostgreSQL alike (docs/ARCHITECTURE.md, "The store").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance.store.db import Store
from appliance.store.paging import Page, PageQuery, Sorts, fetch_page

_USER_COLUMNS = "username, role, agent_id, must_change, failed_logins, locked_until"
_AUDIT_COLUMNS = "id, at, username, action, target, before_json, after_json"


@dataclass(frozen=True)
class WebUser:
    """A web UI account (its password hash is read only by `password_hash`)."""

    username: str
    role: str
    agent_id: str | None
    must_change: bool
    failed_logins: int
    locked_until: float | None


@dataclass(frozen=True)
class AuditRow:
    """One audit log row; before/after as the JSON text stored (None when absent)."""

    id: int
    at: float
    username: str
    action: str
    target: str
    before_json: str | None
    after_json: str | None


def _user(row: Any) -> WebUser:
    return WebUser(row[0], row[1], row[2], bool(row[3]), int(row[4]), row[5])


# -- web users ------------------------------------------------------------------------------------
def get_user(store: Store, username: str) -> WebUser | None:
    rows = store.query(f"SELECT {_USER_COLUMNS} FROM web_users WHERE username = ?", (username,))
    return _user(rows[0]) if rows else None


def users(store: Store) -> list[WebUser]:
    """Every web user, by name."""
    return [_user(r) for r in store.query(f"SELECT {_USER_COLUMNS} FROM web_users ORDER BY username")]


def insert_user(store: Store, username: str, password_hash: str, role: str, agent_id: str | None,
                must_change: bool, at: float) -> None:
    """Add a user (the caller checked the name is free, in the same transaction)."""
    with store.transaction():
        store.execute("INSERT INTO web_users (username, password_hash, role, agent_id, must_change, created_at)"
                      " VALUES (?, ?, ?, ?, ?, ?)", (username, password_hash, role, agent_id, must_change, at))


def password_hash(store: Store, username: str) -> str | None:
    """The stored hash of `username`, or None when there is no such user."""
    rows = store.query("SELECT password_hash FROM web_users WHERE username = ?", (username,))
    return str(rows[0][0]) if rows else None


def count_failed_login(store: Store, username: str, now: float, lock_after: int, lock_until: float) -> None:
    """One more failed login: the count starts again once a lock has expired (issue 12: it never
    did), and the account locks until `lock_until` at the `lock_after`-th failure in a row."""
    with store.transaction():
        store.execute("UPDATE web_users SET"
                      " failed_logins = CASE WHEN locked_until IS NOT NULL AND locked_until <= ? THEN 1"
                      " ELSE failed_logins + 1 END,"
                      " locked_until = CASE WHEN locked_until IS NOT NULL AND locked_until <= ? THEN NULL"
                      " WHEN failed_logins + 1 >= ? THEN ? ELSE locked_until END"
                      " WHERE username = ?", (now, now, lock_after, lock_until, username))


def clear_failed_logins(store: Store, username: str) -> None:
    """A good login or an admin unlock: no failures counted, no lock."""
    with store.transaction():
        store.execute("UPDATE web_users SET failed_logins = 0, locked_until = NULL WHERE username = ?",
                      (username,))


def update_password(store: Store, username: str, password_hash: str, *, must_change: bool) -> None:
    """Store a new hash; a one-time password (`must_change`) also clears any lock."""
    with store.transaction():
        if must_change:
            store.execute("UPDATE web_users SET password_hash = ?, must_change = TRUE, failed_logins = 0,"
                          " locked_until = NULL WHERE username = ?", (password_hash, username))
        else:
            store.execute("UPDATE web_users SET password_hash = ?, must_change = FALSE WHERE username = ?",
                          (password_hash, username))


def update_role(store: Store, username: str, role: str, agent_id: str | None) -> None:
    with store.transaction():
        store.execute("UPDATE web_users SET role = ?, agent_id = ? WHERE username = ?", (role, agent_id, username))


def supervisor_extension(store: Store, username: str) -> str | None:
    """The extension `username` supervises from (Listen, Whisper, Barge ring it), if set."""
    rows = store.query("SELECT extension FROM web_users WHERE username = ?", (username,))
    return (rows[0][0] or None) if rows else None


def set_supervisor_extension(store: Store, username: str, extension: str | None) -> None:
    with store.transaction():
        store.execute("UPDATE web_users SET extension = ? WHERE username = ?", (extension, username))


def delete_user(store: Store, username: str) -> None:
    with store.transaction():
        store.execute("DELETE FROM web_users WHERE username = ?", (username,))


def user_linked_to(store: Store, agent_id: str, other_than: str) -> str | None:
    """The user (other than `other_than`) linked to ACD agent `agent_id`, or None."""
    rows = store.query("SELECT username FROM web_users WHERE agent_id = ? AND username <> ?",
                       (agent_id, other_than))
    return str(rows[0][0]) if rows else None


def count_other_admins(store: Store, username: str) -> int:
    rows = store.query("SELECT COUNT(*) FROM web_users WHERE role = 'admin' AND username <> ?", (username,))
    return int(rows[0][0])


# -- audit log ------------------------------------------------------------------------------------
def add_audit(store: Store, at: float, username: str, action: str, target: str,
              before_json: str | None, after_json: str | None) -> None:
    """Append one audit row (durably: who changed what must survive a power cut)."""
    with store.transaction():
        store.execute("INSERT INTO audit_log (at, username, action, target, before_json, after_json)"
                      " VALUES (?, ?, ?, ?, ?, ?)", (at, username, action, target, before_json, after_json))


def failed_logins_for(store: Store, username: str, address: str, since: float) -> int:
    """The ``login.failed`` rows of `username` from `address` after `since` and after the account's
    last good login or admin unlock / password reset."""
    rows = store.query(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'login.failed' AND username = ? AND target = ?"
        " AND at > ? AND at > COALESCE((SELECT MAX(at) FROM audit_log WHERE (action = 'login' AND username = ?)"
        " OR (action IN ('user.unlock', 'user.reset_password') AND target = ?)), 0)",
        (username, address, since, username, username))
    return int(rows[0][0])


def failed_logins_from(store: Store, address: str, since: float) -> int:
    """The ``login.failed`` rows from `address` (their target) after `since`, whatever the account."""
    rows = store.query("SELECT COUNT(*) FROM audit_log WHERE action = 'login.failed' AND target = ? AND at > ?",
                       (address, since))
    return int(rows[0][0])


def audit_rows(store: Store, *, username: str = "", action: str = "", limit: int = 100,
               offset: int = 0) -> list[AuditRow]:
    """Audit rows, newest first; `action` matches exactly or as a prefix ("user" finds "user.create")."""
    from_where, params = _audit_from_where(username, action)
    sql = f"SELECT {_AUDIT_COLUMNS}{from_where} ORDER BY at DESC, id DESC LIMIT ? OFFSET ?"
    return [AuditRow(*r) for r in store.query(sql, (*params, limit, offset))]


def _audit_from_where(username: str, action: str) -> tuple[str, list[Any]]:
    """The FROM and WHERE of an audit read filtered by user and by action (exact or as a prefix)."""
    where: list[str] = []
    params: list[Any] = []
    if username:
        where.append("username = ?")
        params.append(username)
    if action:
        where.append("(action = ? OR substr(action, 1, ?) = ?)")
        params += [action, len(action) + 1, action + "."]
    return " FROM audit_log" + (" WHERE " + " AND ".join(where) if where else ""), params


AUDIT_SORTS = Sorts({"at": "at", "username": "username", "action": "action", "target": "target"},
                    default="at", default_descending=True, tiebreak="id")


def audit_page(store: Store, q: PageQuery, *, username: str = "", action: str = "") -> Page[AuditRow]:
    """One page of the audit rows sorted by `q` (AUDIT_SORTS), filtered as audit_rows filters."""
    from_where, params = _audit_from_where(username, action)
    return fetch_page(store, _AUDIT_COLUMNS, from_where, params, AUDIT_SORTS, q, lambda r: AuditRow(*r))


def audit_facets(store: Store) -> tuple[list[str], list[str]]:
    """The user names and actions that occur in the audit log (for the viewer's filters)."""
    names = [r[0] for r in store.query("SELECT DISTINCT username FROM audit_log ORDER BY username")]
    actions = [r[0] for r in store.query("SELECT DISTINCT action FROM audit_log ORDER BY action")]
    return names, actions
