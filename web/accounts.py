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

from appliance.schema.accounts import UserRecord
from appliance.schema.errors import FieldError, RecordInvalid, invalid
from appliance.schema.types import errors_of
from appliance.store import accounts as account_store
from appliance.store.accounts import WebUser
from appliance.store.db import Store
from appliance.store.paging import Page, PageQuery

MIN_PASSWORD = 10
MIN_STRENGTH = 3  # zxcvbn score, 0-4
LOCK_AFTER = 5  # failed logins in a row
LOCK_SECONDS = 300.0
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


User = WebUser  # the account as the pages see it: a typed row of the store


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


def password_errors(password: str, username: str, field: str = "password") -> list[FieldError]:
    """Why `password` is not allowed for `username` (at `field`), or [] when it is."""
    if len(password) < MIN_PASSWORD:
        return [FieldError((field,), f"at least {MIN_PASSWORD} characters")]
    if password.lower() == username.lower():
        return [FieldError((field,), "must not be the user name")]
    # Length alone let "aaaaaaaaaa" through. zxcvbn (Wheeler, USENIX Security 2016) estimates the
    # guesses an attacker needs from dictionaries, keyboard walks, repeats and dates; score 3 is
    # about 10^8 guesses, its "safely unguessable" bar for an online attack on a throttled login.
    estimate = zxcvbn(password, user_inputs=[username, "plateau"])
    if estimate["score"] < MIN_STRENGTH:
        hint = estimate["feedback"].get("warning") or "it is too easy to guess"
        return [FieldError((field,), f"{hint.rstrip('.')}; use a few unrelated words or more varied characters")]
    return []


def check_password_rules(password: str, username: str, field: str = "password") -> None:
    """Raise RecordInvalid (at `field`) for a password an admin should not be allowed."""
    errors = password_errors(password, username, field)
    if errors:
        raise RecordInvalid(errors)


def one_time_password() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(16))


def get_user(store: Store, username: str) -> User | None:
    return account_store.get_user(store, username)


def users(store: Store) -> list[User]:
    return account_store.users(store)


def create_user(store: Store, username: str, password: str, role: str, at: float, *,
                agent_id: str | None = None, must_change: bool = True) -> User:
    """Create a user; RecordInvalid lists every bad field at once (name, role, password)."""
    errors = errors_of(UserRecord, {"username": username, "role": role})
    errors += password_errors(password, username)
    with store.transaction():
        if not errors and get_user(store, username) is not None:
            errors.append(FieldError(("username",), f"{username!r} already exists"))
        if errors:
            raise RecordInvalid(errors)
        account_store.insert_user(store, username, hash_password(password), role, agent_id, must_change, at)
    user = get_user(store, username)
    if user is None:
        raise invalid(f"{username!r} could not be created", "username")
    return user


def add_user(store: Store, username: str, password: str, role: str, agent_id: str | None, at: float) -> User:
    """The users page's creation: `create_user` with the agent link checked, every error at once."""
    errors = errors_of(UserRecord, {"username": username, "role": role})
    errors += agent_link_errors(store, role, agent_id, username)
    errors += password_errors(password, username)
    with store.transaction():
        if not any(e.field == "username" for e in errors) and get_user(store, username) is not None:
            errors.append(FieldError(("username",), f"{username!r} already exists"))
        if errors:
            raise RecordInvalid(errors)
        return create_user(store, username, password, role, at, agent_id=_linked(role, agent_id))


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
        stored = account_store.password_hash(store, username)
        right = verify_password(password, stored if stored is not None else _DUMMY_HASH)
        if stored is None:
            return None
        if locked_for(store, username, address, now):
            return None
        if not right:
            account_store.count_failed_login(store, username, now, LOCK_AFTER, now + LOCK_SECONDS)
            return None
        account_store.clear_failed_logins(store, username)
    return get_user(store, username)


def locked_for(store: Store, username: str, address: str, now: float) -> bool:
    """True when `address` failed LOCK_AFTER times for `username` within LOCK_SECONDS.

    Counted from the ``login.failed`` audit rows (user name, source address) since the later of
    the window's start and the account's last good login or admin unlock, so a lock expires by
    itself and an unlock or a good login ends it.
    """
    return account_store.failed_logins_for(store, username, address, now - LOCK_SECONDS) >= LOCK_AFTER


def set_password(store: Store, username: str, password: str) -> None:
    check_password_rules(password, username)
    account_store.update_password(store, username, hash_password(password), must_change=False)


def audit(store: Store, at: float, username: str, action: str, target: str = "",
          before: Any = None, after: Any = None) -> None:
    """Record who changed what, with the record before and after (JSON)."""
    account_store.add_audit(store, at, username, action, target,
                   None if before is None else json.dumps(before, default=str, sort_keys=True),
                   None if after is None else json.dumps(after, default=str, sort_keys=True))


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
    return account_store.failed_logins_from(store, address, now - LOGIN_LIMIT_WINDOW) >= LOGIN_LIMIT_PER_ADDRESS


def _linked(role: str, agent_id: str | None) -> str | None:
    return (agent_id or "").strip() if role == "agent" else None


def agent_link_errors(store: Store, role: str, agent_id: str | None, username: str) -> list[FieldError]:
    """Why a user of `role` cannot be linked to `agent_id` (an agent needs an ACD agent of its own)."""
    if role != "agent":
        return []
    from appliance.store import acd

    agent_id = _linked(role, agent_id)
    if not agent_id:
        return [FieldError(("agent_id",), "an agent user must be linked to an ACD agent")]
    if acd.get_agent(store, agent_id) is None:
        return [FieldError(("agent_id",), f"there is no ACD agent {agent_id!r}")]
    taken = account_store.user_linked_to(store, agent_id, username)
    if taken is not None:
        return [FieldError(("agent_id",), f"agent {agent_id} is already linked to user {taken!r}")]
    return []


def check_agent_link(store: Store, role: str, agent_id: str | None, username: str) -> str | None:
    """The agent id to store for a user of `role` (None unless an agent); RecordInvalid (role, agent_id)."""
    errors = [e for e in errors_of(UserRecord, {"username": username, "role": role}) if e.field == "role"]
    errors = errors or agent_link_errors(store, role, agent_id, username)
    if errors:
        raise RecordInvalid(errors)
    return _linked(role, agent_id)


def set_role(store: Store, username: str, role: str, agent_id: str | None) -> tuple[User, User]:
    """Change a user's role (and agent link); returns (before, after). The last admin stays an admin."""
    with store.transaction():
        before = get_user(store, username)
        if before is None:
            raise invalid(f"no user {username!r}", "username")
        linked = check_agent_link(store, role, agent_id, username)
        if before.role == "admin" and role != "admin" and account_store.count_other_admins(store, username) == 0:
            raise invalid("this is the last admin; make another admin first", "role")
        account_store.update_role(store, username, role, linked)
        after = get_user(store, username)
    if after is None:
        raise invalid(f"no user {username!r}", "username")
    return before, after


def reset_password(store: Store, username: str) -> str:
    """Give `username` a new one-time password (returned, to show once) and clear any lock."""
    password = one_time_password()
    with store.transaction():
        if get_user(store, username) is None:
            raise invalid(f"no user {username!r}", "username")
        account_store.update_password(store, username, hash_password(password), must_change=True)
    return password


def unlock(store: Store, username: str) -> User:
    """Clear the failed-login count and lock of `username`; returns the user as it was."""
    with store.transaction():
        before = get_user(store, username)
        if before is None:
            raise invalid(f"no user {username!r}", "username")
        account_store.clear_failed_logins(store, username)
    return before


def delete_user(store: Store, username: str, acting: str) -> User:
    """Delete `username` (never the acting user, never the last admin); returns it as it was."""
    if username == acting:
        raise invalid("you cannot delete yourself", "username")
    with store.transaction():
        before = get_user(store, username)
        if before is None:
            raise invalid(f"no user {username!r}", "username")
        if before.role == "admin" and account_store.count_other_admins(store, username) == 0:
            raise invalid("this is the last admin", "username")
        account_store.delete_user(store, username)
    return before


def audit_entries(store: Store, *, username: str = "", action: str = "", limit: int = 100,
                  offset: int = 0) -> list[AuditEntry]:
    """Audit rows, newest first; `action` matches exactly or as a prefix ("user" finds "user.create")."""
    found = account_store.audit_rows(store, username=username, action=action, limit=limit, offset=offset)
    return [AuditEntry(r.id, r.at, r.username, r.action, r.target, _json_or_text(r.before_json),
                       _json_or_text(r.after_json)) for r in found]


def audit_page(store: Store, q: PageQuery, *, username: str = "", action: str = "") -> Page[AuditEntry]:
    """One page of the audit log sorted by `q` (appliance/store/accounts.AUDIT_SORTS), as entries."""
    found = account_store.audit_page(store, q, username=username, action=action)
    return Page([AuditEntry(r.id, r.at, r.username, r.action, r.target, _json_or_text(r.before_json),
                            _json_or_text(r.after_json)) for r in found.rows], found.total, q)


def audit_facets(store: Store) -> tuple[list[str], list[str]]:
    """The user names and actions that occur in the audit log (for the viewer's filters)."""
    return account_store.audit_facets(store)


def _json_or_text(raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw
