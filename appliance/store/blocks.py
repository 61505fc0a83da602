"""The blocked source addresses of the Store (the SIP guard's bans, appliance/sip/guard.py).

A mixin of `Store` (store/db.py); written through `record_write`, committed NORMAL (a lost block
is re-earned by the attacker's next failures). The SQL is written for SQLite and PostgreSQL alike.
"""
from __future__ import annotations

from typing import Any

from appliance.store.models import BlockedAddress
from appliance.store.validation import check_record_types
from appliance.store.writes import DeferredWriting


class BlockTable(DeferredWriting):
    """Blocked addresses, keyed on the address."""

    # -- blocked addresses -------------------------------------------------------------

    def save_block(self, block: BlockedAddress) -> None:
        """Insert or update a blocked source address (deferred on a storage fault)."""
        check_record_types(block, "blocked_address")
        self.record_write("block", [(
            "INSERT INTO blocked_addresses (address, until_at, reason, failures)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (address) DO UPDATE SET"
            " until_at = excluded.until_at, reason = excluded.reason,"
            " failures = excluded.failures",
            (block.address, block.until, block.reason, block.failures),
        )])

    def delete_block(self, address: str) -> bool:
        """Unblock an address; return whether it was blocked (True when deferred)."""
        changed: list[int] = []
        now = self.record_write("block", [("DELETE FROM blocked_addresses WHERE address = ?", (address,))],
                                check=lambda cursors: changed.append(cursors[0].rowcount))
        return bool(changed[0]) if now else True

    def blocks(self, now: float | None = None) -> list[BlockedAddress]:
        """Return blocks (only those still in force when ``now`` is given), by address."""
        sql = "SELECT address, until_at, reason, failures FROM blocked_addresses"
        params: tuple[Any, ...] = ()
        if now is not None:
            sql += " WHERE until_at > ?"
            params = (now,)
        rows = self.query(sql + " ORDER BY address", params)
        return [BlockedAddress(address=a, until=u, reason=r, failures=f) for a, u, r, f in rows]
