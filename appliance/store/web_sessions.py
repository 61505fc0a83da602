"""Web UI sessions kept server-side, so logging out or changing a password ends them for real.

The browser's signed cookie carries only a random token; the row here (keyed by the token's
SHA-256, so a copy of the database or a backup holds no usable session) says whose it is and
until when. A session is valid while its row exists, is not revoked and has not expired:
logout revokes one, a password change or reset revokes every session of that user
(OWASP Session Management Cheat Sheet, "Renew the session ID after any privilege level change").

Module functions over a `Store` (like acd.py); every write is committed before they return.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from appliance.store.db import Store

# The table is the last migration in migrations.py (web_sessions).


@dataclass(frozen=True)
class WebSession:
    username: str
    created_at: float
    expires_at: float


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(store: Store, username: str, now: float, lifetime: float) -> str:
    """A new session for `username`; returns the token for the cookie (never stored as such)."""
    token = secrets.token_urlsafe(32)
    with store.transaction():
        # Expired and revoked rows are only history: drop them as new ones come.
        store.execute("DELETE FROM web_sessions WHERE expires_at < ? OR revoked_at IS NOT NULL", (now,))
        store.execute("INSERT INTO web_sessions (token_sha256, username, created_at, expires_at)"
                    " VALUES (?, ?, ?, ?)", (_digest(token), username, now, now + lifetime))
    return token


def find_session(store: Store, token: str, now: float) -> WebSession | None:
    """The live session of `token`, or None (unknown, revoked or expired)."""
    rows = store.query("SELECT username, created_at, expires_at FROM web_sessions WHERE token_sha256 = ?"
                        " AND revoked_at IS NULL AND expires_at > ?", (_digest(token), now))
    return WebSession(str(rows[0][0]), float(rows[0][1]), float(rows[0][2])) if rows else None


def revoke_session(store: Store, token: str, now: float) -> None:
    with store.transaction():
        store.execute("UPDATE web_sessions SET revoked_at = ? WHERE token_sha256 = ? AND revoked_at IS NULL",
                    (now, _digest(token)))


def revoke_user_sessions(store: Store, username: str, now: float) -> int:
    """Revoke every live session of `username` (password changed or reset, user deleted)."""
    with store.transaction():
        cur = store.execute("UPDATE web_sessions SET revoked_at = ? WHERE username = ? AND revoked_at IS NULL",
                          (now, username))
    return int(cur.rowcount)
