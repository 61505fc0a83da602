"""The registrations table of the Store: the contact bindings of RFC 3261 section 10.

A mixin of `Store` (store/db.py). Bindings are written in the SIP loop through `record_write`, so
a storage fault defers them instead of failing the REGISTER; committed NORMAL (a phone
re-registers; store/db.py's docstring). The SQL is written for SQLite and PostgreSQL alike.
"""
from __future__ import annotations

from typing import Any

from appliance.store.columns import from_row, row_values
from appliance.store.models import Registration
from appliance.store.validation import check_record_types
from appliance.store.writes import DeferredWriting
from appliance.store.dialect import upsert_sql

_REGISTRATION_COLUMNS = (
    "aor", "contact", "source_host", "source_port", "transport", "expires_at", "user_agent",
    "call_id", "cseq", "path",
)


class RegistrationTable(DeferredWriting):
    """Contact bindings, keyed on (aor, contact)."""

    # -- registrations -----------------------------------------------------------------

    def save_registration(self, reg: Registration) -> None:
        """Insert or refresh a contact binding (keyed on aor + contact); deferred on a fault."""
        check_record_types(reg, "registration")
        self.record_write("registration", [(
            upsert_sql("registrations", _REGISTRATION_COLUMNS, ("aor", "contact")),
            row_values(reg, _REGISTRATION_COLUMNS),
        )])

    def delete_registration(self, aor: str, contact: str) -> bool:
        """Remove one binding; return whether it existed (True when deferred: it is going)."""
        changed: list[int] = []
        now = self.record_write(
            "registration", [("DELETE FROM registrations WHERE aor = ? AND contact = ?", (aor, contact))],
            check=lambda cursors: changed.append(cursors[0].rowcount))
        return bool(changed[0]) if now else True

    def delete_registrations(self, aor: str) -> int:
        """Remove every binding of an AOR (REGISTER with ``Contact: *``); the count (0 if deferred)."""
        changed: list[int] = []
        self.record_write("registration", [("DELETE FROM registrations WHERE aor = ?", (aor,))],
                          check=lambda cursors: changed.append(cursors[0].rowcount))
        return changed[0] if changed else 0

    def purge_registrations(self, now: float) -> int:
        """Delete bindings expired at ``now``; the count (0 if deferred)."""
        changed: list[int] = []
        self.record_write("registration", [("DELETE FROM registrations WHERE expires_at <= ?", (now,))],
                          check=lambda cursors: changed.append(cursors[0].rowcount))
        return changed[0] if changed else 0

    def registrations(self, now: float | None = None, aor: str | None = None) -> list[Registration]:
        """Return bindings (only unexpired ones when ``now`` is given), by aor and contact."""
        where: list[str] = []
        params: list[Any] = []
        if now is not None:
            where.append("expires_at > ?")
            params.append(now)
        if aor is not None:
            where.append("aor = ?")
            params.append(aor)
        sql = f"SELECT {', '.join(_REGISTRATION_COLUMNS)} FROM registrations"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self.query(sql + " ORDER BY aor, contact", params)
        return [from_row(Registration, _REGISTRATION_COLUMNS, r) for r in rows]
