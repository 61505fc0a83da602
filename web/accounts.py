"""Web UI accounts: users with a role, scrypt password hashes, lockout, and the audit log.

Passwords are hashed with scrypt (hashlib, RFC 7914; n=2**14, r=8, p=1, a 16-byte salt), the
parameters stored with each hash so they can be raised later without breaking old ones.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import string
from dataclasses import dataclass
from typing import Any

from zxcvbn import zxcvbn

from appliance.store.db import Store
from appliance.store.errors import ConfigError

ROLES = ("admin", "supervisor", "agent")
MIN_PASSWORD = 10
MIN_STRENGTH = 3  # zxcvbn score, 0-4
LOCK_AFTER = 5  # failed logins in a row
LOCK_SECONDS = 300.0
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


@dataclass
class User:
    username: str
    role: str
    agent_id: str | None
    must_change: bool
    failed_logins: int
    locked_until: float | None


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                               dklen=len(digest) // 2)
    return hmac.compare_digest(candidate.hex(), digest)


def check_password_rules(password: str, username: str) -> None:
    """Raise ConfigError (field ``password``) for a password an admin should not be allowed."""
    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"password: at least {MIN_PASSWORD} characters")
    if password.lower() == username.lower():
        raise ConfigError("password: must not be the user name")
    # Length alone let "aaaaaaaaaa" through. zxcvbn (Wheeler, USENIX Security 2016) estimates the
    # guesses an attacker needs from dictionaries, keyboard walks, repeats and dates; score 3 is
    # about 10^8 guesses, its "safely unguessable" bar for an online attack on a throttled login.
    estimate = zxcvbn(password, user_inputs=[username, "plateau"])
    if estimate["score"] < MIN_STRENGTH:
        hint = estimate["feedback"].get("warning") or "it is too easy to guess"
        raise ConfigError(f"password: {hint.rstrip('.')}; use a few unrelated words or more varied characters")


def one_time_password() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(16))


_COLUMNS = "username, role, agent_id, must_change, failed_logins, locked_until"


def _user(row: Any) -> User:
    return User(row[0], row[1], row[2], bool(row[3]), int(row[4]), row[5])


def get_user(store: Store, username: str) -> User | None:
    rows = store.query(f"SELECT {_COLUMNS} FROM web_users WHERE username = ?", (username,))
    return _user(rows[0]) if rows else None


def users(store: Store) -> list[User]:
    return [_user(r) for r in store.query(f"SELECT {_COLUMNS} FROM web_users ORDER BY username")]


def create_user(store: Store, username: str, password: str, role: str, at: float, *,
                agent_id: str | None = None, must_change: bool = True) -> User:
    if role not in ROLES:
        raise ConfigError(f"role: {role!r} is not one of {', '.join(ROLES)}")
    if not username or not all(c.isalnum() or c in "._-" for c in username) or len(username) > 64:
        raise ConfigError("username: letters, digits, '.', '_' or '-', up to 64")
    check_password_rules(password, username)
    with store.transaction():
        if get_user(store, username) is not None:
            raise ConfigError(f"username: {username!r} already exists")
        store.execute("INSERT INTO web_users (username, password_hash, role, agent_id, must_change, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)", (username, hash_password(password), role, agent_id,
                                                   must_change, at))
    user = get_user(store, username)
    if user is None:
        raise ConfigError(f"username: {username!r} could not be created")
    return user


# A well-formed hash no password matches, checked for unknown users so that every login costs
# one scrypt whatever the user name (no user enumeration by timing).
_DUMMY_HASH = f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${'00' * 16}${'00' * 32}"


def authenticate(store: Store, username: str, password: str, now: float, address: str = "") -> User | None:
    """The user if the password is right and the account not locked for `address`; counts failures.

    Every path runs scrypt once (unknown user, locked, wrong or right password), so the answer
    time says nothing about which users exist or are locked. The lock holds the guessing address
    only (`locked_for`): a stranger's failures never keep the admin out from another address.
    """
    with store.transaction():
        rows = store.query("SELECT password_hash FROM web_users WHERE username = ?", (username,))
        right = verify_password(password, rows[0][0] if rows else _DUMMY_HASH)
        if not rows:
            return None
        if locked_for(store, username, address, now):
            return None
        if not right:
            # The count starts again once a lock has expired (issue 12: it never did).
            store.execute("UPDATE web_users SET"
                        " failed_logins = CASE WHEN locked_until IS NOT NULL AND locked_until <= ? THEN 1"
                        " ELSE failed_logins + 1 END,"
                        " locked_until = CASE WHEN locked_until IS NOT NULL AND locked_until <= ? THEN NULL"
                        " WHEN failed_logins + 1 >= ? THEN ? ELSE locked_until END"
                        " WHERE username = ?", (now, now, LOCK_AFTER, now + LOCK_SECONDS, username))
            return None
        store.execute("UPDATE web_users SET failed_logins = 0, locked_until = NULL WHERE username = ?", (username,))
    return get_user(store, username)


def locked_for(store: Store, username: str, address: str, now: float) -> bool:
    """True when `address` failed LOCK_AFTER times for `username` within LOCK_SECONDS.

    Counted from the ``login.failed`` audit rows (user name, source address) since the later of
    the window's start and the account's last good login or admin unlock, so a lock expires by
    itself and an unlock or a good login ends it.
    """
    rows = store.query(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'login.failed' AND username = ? AND target = ?"
        " AND at > ? AND at > COALESCE((SELECT MAX(at) FROM audit_log WHERE (action = 'login' AND username = ?)"
        " OR (action IN ('user.unlock', 'user.reset_password') AND target = ?)), 0)",
        (username, address, now - LOCK_SECONDS, username, username))
    return int(rows[0][0]) >= LOCK_AFTER


def set_password(store: Store, username: str, password: str) -> None:
    check_password_rules(password, username)
    with store.transaction():
        store.execute("UPDATE web_users SET password_hash = ?, must_change = FALSE WHERE username = ?",
                    (hash_password(password), username))


def audit(store: Store, at: float, username: str, action: str, target: str = "",
          before: Any = None, after: Any = None) -> None:
    """Record who changed what, with the record before and after (JSON)."""
    with store.transaction():
        store.execute("INSERT INTO audit_log (at, username, action, target, before_json, after_json)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (at, username, action, target,
                     None if before is None else json.dumps(before, default=str, sort_keys=True),
                     None if after is None else json.dumps(after, default=str, sort_keys=True)))


def ensure_first_admin(store: Store, at: float) -> str | None:
    """On first start create user ``admin`` with a one-time password (returned, to print once)."""
    if users(store):
        return None
    password = one_time_password()
    create_user(store, "admin", password, "admin", at, must_change=True)
    audit(store, at, "system", "user.create", "admin", after={"role": "admin"})
    return password


# -- user administration (admin pages) --------------------------------------------------------
LOGIN_LIMIT_PER_ADDRESS = 20  # failed logins from one source address...
LOGIN_LIMIT_WINDOW = 600.0  # ...within this many seconds, then 429 for that address


@dataclass
class AuditEntry:
    """One audit log row, its before/after decoded from JSON."""

    id: int
    at: float
    username: str
    action: str
    target: str
    before: Any
    after: Any


def login_throttled(store: Store, address: str, now: float) -> bool:
    """True when `address` failed to log in too often lately (a guessing run across accounts).

    The per-account lockout stops guessing one password; this stops one address trying many
    accounts. It counts the ``login.failed`` audit rows (their target is the source address), so
    every gunicorn worker sees the same count and a restart does not reset it.
    """
    if not address:
        return False
    rows = store.query("SELECT COUNT(*) FROM audit_log WHERE action = 'login.failed' AND target = ? AND at > ?",
                        (address, now - LOGIN_LIMIT_WINDOW))
    return int(rows[0][0]) >= LOGIN_LIMIT_PER_ADDRESS


def check_agent_link(store: Store, role: str, agent_id: str | None, username: str) -> str | None:
    """The agent id to store for a user of `role` (None unless an agent); raises ConfigError (agent_id)."""
    if role not in ROLES:
        raise ConfigError(f"role: {role!r} is not one of {', '.join(ROLES)}")
    if role != "agent":
        return None
    from appliance.store import acd

    agent_id = (agent_id or "").strip()
    if not agent_id:
        raise ConfigError("agent_id: an agent user must be linked to an ACD agent")
    if acd.get_agent(store, agent_id) is None:
        raise ConfigError(f"agent_id: there is no ACD agent {agent_id!r}")
    taken = store.query("SELECT username FROM web_users WHERE agent_id = ? AND username != ?", (agent_id, username))
    if taken:
        raise ConfigError(f"agent_id: agent {agent_id} is already linked to user {taken[0][0]!r}")
    return agent_id


def _other_admins(store: Store, username: str) -> int:
    rows = store.query("SELECT COUNT(*) FROM web_users WHERE role = 'admin' AND username != ?", (username,))
    return int(rows[0][0])


def set_role(store: Store, username: str, role: str, agent_id: str | None) -> tuple[User, User]:
    """Change a user's role (and agent link); returns (before, after). The last admin stays an admin."""
    with store.transaction():
        before = get_user(store, username)
        if before is None:
            raise ConfigError(f"username: no user {username!r}")
        linked = check_agent_link(store, role, agent_id, username)
        if before.role == "admin" and role != "admin" and _other_admins(store, username) == 0:
            raise ConfigError("role: this is the last admin; make another admin first")
        store.execute("UPDATE web_users SET role = ?, agent_id = ? WHERE username = ?", (role, linked, username))
        after = get_user(store, username)
    if after is None:
        raise ConfigError(f"username: no user {username!r}")
    return before, after


def reset_password(store: Store, username: str) -> str:
    """Give `username` a new one-time password (returned, to show once) and clear any lock."""
    password = one_time_password()
    with store.transaction():
        if get_user(store, username) is None:
            raise ConfigError(f"username: no user {username!r}")
        store.execute("UPDATE web_users SET password_hash = ?, must_change = TRUE, failed_logins = 0,"
                    " locked_until = NULL WHERE username = ?", (hash_password(password), username))
    return password


def unlock(store: Store, username: str) -> User:
    """Clear the failed-login count and lock of `username`; returns the user as it was."""
    with store.transaction():
        before = get_user(store, username)
        if before is None:
            raise ConfigError(f"username: no user {username!r}")
        store.execute("UPDATE web_users SET failed_logins = 0, locked_until = NULL WHERE username = ?", (username,))
    return before


def delete_user(store: Store, username: str, acting: str) -> User:
    """Delete `username` (never the acting user, never the last admin); returns it as it was."""
    if username == acting:
        raise ConfigError("username: you cannot delete yourself")
    with store.transaction():
        before = get_user(store, username)
        if before is None:
            raise ConfigError(f"username: no user {username!r}")
        if before.role == "admin" and _other_admins(store, username) == 0:
            raise ConfigError("username: this is the last admin")
        store.execute("DELETE FROM web_users WHERE username = ?", (username,))
    return before


def audit_entries(store: Store, *, username: str = "", action: str = "", limit: int = 100,
                  offset: int = 0) -> list[AuditEntry]:
    """Audit rows, newest first; `action` matches exactly or as a prefix ("user" finds "user.create")."""
    where: list[str] = []
    params: list[Any] = []
    if username:
        where.append("username = ?")
        params.append(username)
    if action:
        where.append("(action = ? OR substr(action, 1, ?) = ?)")
        params += [action, len(action) + 1, action + "."]
    sql = ("SELECT id, at, username, action, target, before_json, after_json FROM audit_log"
           + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY at DESC, id DESC LIMIT ? OFFSET ?")
    rows = store.query(sql, (*params, limit, offset))
    return [AuditEntry(r[0], r[1], r[2], r[3], r[4], _json_or_text(r[5]), _json_or_text(r[6])) for r in rows]


def audit_facets(store: Store) -> tuple[list[str], list[str]]:
    """The user names and actions that occur in the audit log (for the viewer's filters)."""
    names = [r[0] for r in store.query("SELECT DISTINCT username FROM audit_log ORDER BY username")]
    actions = [r[0] for r in store.query("SELECT DISTINCT action FROM audit_log ORDER BY action")]
    return names, actions


def _json_or_text(raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw
