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

from appliance.store.db import Store
from appliance.store.errors import ConfigError

ROLES = ("admin", "supervisor", "agent")
MIN_PASSWORD = 10
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


def one_time_password() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(16))


_COLUMNS = "username, role, agent_id, must_change, failed_logins, locked_until"


def _user(row: Any) -> User:
    return User(row[0], row[1], row[2], bool(row[3]), int(row[4]), row[5])


def get_user(store: Store, username: str) -> User | None:
    rows = store._query(f"SELECT {_COLUMNS} FROM web_users WHERE username = ?", (username,))
    return _user(rows[0]) if rows else None


def users(store: Store) -> list[User]:
    return [_user(r) for r in store._query(f"SELECT {_COLUMNS} FROM web_users ORDER BY username")]


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
        store._exec("INSERT INTO web_users (username, password_hash, role, agent_id, must_change, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)", (username, hash_password(password), role, agent_id,
                                                   must_change, at))
    user = get_user(store, username)
    if user is None:
        raise ConfigError(f"username: {username!r} could not be created")
    return user


def authenticate(store: Store, username: str, password: str, now: float) -> User | None:
    """The user if the password is right and the account not locked; counts failures."""
    with store.transaction():
        rows = store._query("SELECT password_hash, locked_until FROM web_users WHERE username = ?", (username,))
        if not rows:
            hash_password(password)  # same time as a real check: no user enumeration by timing
            return None
        stored, locked_until = rows[0]
        if locked_until is not None and now < locked_until:
            return None
        if not verify_password(password, stored):
            store._exec("UPDATE web_users SET failed_logins = failed_logins + 1,"
                        " locked_until = CASE WHEN failed_logins + 1 >= ? THEN ? ELSE locked_until END"
                        " WHERE username = ?", (LOCK_AFTER, now + LOCK_SECONDS, username))
            return None
        store._exec("UPDATE web_users SET failed_logins = 0, locked_until = NULL WHERE username = ?", (username,))
    return get_user(store, username)


def set_password(store: Store, username: str, password: str) -> None:
    check_password_rules(password, username)
    with store.transaction():
        store._exec("UPDATE web_users SET password_hash = ?, must_change = FALSE WHERE username = ?",
                    (hash_password(password), username))


def audit(store: Store, at: float, username: str, action: str, target: str = "",
          before: Any = None, after: Any = None) -> None:
    """Record who changed what, with the record before and after (JSON)."""
    with store.transaction():
        store._exec("INSERT INTO audit_log (at, username, action, target, before_json, after_json)"
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
