"""The call detail records of the Store: opened at a call's start, answered, closed durably.

A mixin of `Store` (store/db.py). These are the hot path of every call: each is one prepared
statement through `record_write` / `insert_row`, deferred in order on a storage fault so a full
disk never fails a call (store/writes.py); durations are computed in the closing UPDATE so a
replayed close is right. The SQL is written for SQLite and PostgreSQL alike (CASE, no date
functions: times are epoch seconds).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from appliance.store.errors import StoreError
from appliance.store.models import DIRECTIONS, DISPOSITIONS, Cdr
from appliance.store.writes import DeferredWriting

_CDR_COLUMNS = (
    "id", "call_id", "start_at", "answer_at", "end_at", "caller", "caller_name", "callee",
    "direction", "disposition", "hangup_cause", "duration", "billsec", "trunk",
)
INTERRUPTED_CAUSE = "interrupted: engine stopped during the call"


# An open CDR, or one a survivor closed as INTERRUPTED while the node that owns it was in fact alive
# (cut off from the site's database longer than the watch's bound: appliance/cluster/nodes.py): the
# owner answering or closing it proves the call went on, so its own record wins over the guess.
_STILL_OURS = "(end_at IS NULL OR (disposition = 'INTERRUPTED' AND node = ? AND node <> ''))"


def _close_interrupted(now: float, cause: str, node: str | None) -> tuple[str, tuple[Any, ...]]:
    """The UPDATE closing open CDRs as INTERRUPTED (all, or one node's), durations computed in it."""
    sql = ("UPDATE cdr SET end_at = ?, disposition = 'INTERRUPTED', hangup_cause = ?,"
           " duration = CASE WHEN ? > start_at THEN ? - start_at ELSE 0 END,"
           " billsec = CASE WHEN answer_at IS NULL OR ? <= answer_at THEN 0"
           " ELSE ? - answer_at END"
           " WHERE end_at IS NULL")
    params: tuple[Any, ...] = (now, cause, now, now, now, now)
    if node is not None:
        sql += " AND node = ?"
        params += (node,)
    return sql, params


def _cdr_from_row(row: Sequence[Any]) -> Cdr:
    v = dict(zip(_CDR_COLUMNS, row, strict=True))
    return Cdr(
        id=v["id"], call_id=v["call_id"], start=v["start_at"], answer=v["answer_at"],
        end=v["end_at"], caller=v["caller"], caller_name=v["caller_name"], callee=v["callee"],
        direction=v["direction"], disposition=v["disposition"], hangup_cause=v["hangup_cause"],
        duration=v["duration"], billsec=v["billsec"], trunk=v["trunk"],
    )


class CdrTable(DeferredWriting):
    """Call records: open, answer, close, the interrupted ones at start, and reads."""

    # -- CDR ---------------------------------------------------------------------------

    def cdr_open(
        self, call_id: str, caller: str, caller_name: str, callee: str, direction: str,
        start: float, trunk: str | None = None,
    ) -> int:
        """Open a call record and return its id (deferred, with its id, on a storage fault).

        Committed to the WAL before returning, so a crash of the engine never loses it, and
        fsynced against power loss by the WAL syncer thread within milliseconds (module
        docstring: the SIP loop does not wait for the fsync; ``wal_sync`` in the storage status
        is the measured window).
        """
        if direction not in DIRECTIONS:
            raise StoreError(f"cdr direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
        return self.insert_row(
            "cdr_open", "cdr",
            ("call_id", "start_at", "caller", "caller_name", "callee", "direction", "trunk", "node"),
            (call_id, start, caller, caller_name, callee, direction, trunk, self.node), sync_soon=True)

    def _cdr_refusal(self, cdr_id: int, disposition: str | None = None) -> StoreError:
        """Why an UPDATE of an open CDR changed nothing."""
        row = self.execute(
            "SELECT start_at, answer_at, end_at FROM cdr WHERE id = ?", (cdr_id,)
        ).fetchone()
        if row is None:
            return StoreError(f"cdr {cdr_id} does not exist")
        if row[2] is not None:
            return StoreError(f"cdr {cdr_id} is already closed")
        if disposition is None:
            return StoreError(f"cdr {cdr_id} is already answered")
        return StoreError(f"cdr {cdr_id}: ANSWERED but no answer time was recorded")

    def cdr_answer(self, cdr_id: int, t: float) -> None:
        """Record the answer time of an open, unanswered call (deferred on a storage fault)."""
        def check(cursors: list[Any]) -> None:
            if not cursors[0].rowcount:
                raise self._cdr_refusal(cdr_id)

        self.record_write("cdr_answer", [(
            f"UPDATE cdr SET answer_at = ? WHERE id = ? AND answer_at IS NULL AND {_STILL_OURS}",
            (t, cdr_id, self.node),
        )], check=check, expect_row=True)

    def cdr_close(self, cdr_id: int, end: float, disposition: str, hangup_cause: str | None) -> None:
        """Close an open call record (durably), computing duration and billsec; also one a survivor
        closed as INTERRUPTED while this node was alive (`_STILL_OURS`): the true end replaces it.

        Committed before returning (an engine crash never loses it); on SQLite the WAL syncer
        fsyncs it against power loss within milliseconds, off the SIP loop, as for the open
        (an fsync in the commit was the largest single wait of a call's loop time at load,
        bench/sip_load.py); on PostgreSQL the commit is synchronous.

        Times are wall clock; if the clock stepped back during the call the durations are
        clamped at 0 rather than losing the record. The durations are computed in the UPDATE
        itself, so a close deferred by a storage fault is right whenever it is replayed.
        """
        if disposition not in DISPOSITIONS:
            raise StoreError(f"cdr disposition {disposition!r} is not one of {DISPOSITIONS}")

        def check(cursors: list[Any]) -> None:
            if not cursors[0].rowcount:
                raise self._cdr_refusal(cdr_id, disposition)

        self.record_write("cdr_close", [(
            "UPDATE cdr SET end_at = ?, disposition = ?, hangup_cause = ?,"
            " duration = CASE WHEN ? > start_at THEN ? - start_at ELSE 0.0 END,"
            " billsec = CASE WHEN answer_at IS NULL OR ? <= answer_at THEN 0.0 ELSE ? - answer_at END"
            f" WHERE id = ? AND {_STILL_OURS} AND (? <> 'ANSWERED' OR answer_at IS NOT NULL)",
            (end, disposition, hangup_cause, end, end, end, end, cdr_id, self.node, disposition),
        )], durable=True, check=check, expect_row=True, sync_soon=True)

    def close_interrupted(self, now: float, node: str | None = None) -> int:
        """Close the open CDRs as INTERRUPTED at ``now`` (call at engine start); return the count
        (0 when deferred: an engine restarted on a full disk still starts and takes calls).

        ``node``: only that node's calls (a shared store: the other engines' calls are live);
        None: every open CDR (one box, where every call was this engine's).
        """
        changed: list[int] = []
        self.record_write("cdr_close", [_close_interrupted(now, INTERRUPTED_CAUSE, node)], durable=True,
                          check=lambda cursors: changed.append(cursors[0].rowcount))
        return changed[0] if changed else 0

    def close_node_calls(self, node: str | None, now: float, cause: str) -> int:
        """Close the open CDRs of ``node`` (None: all) as INTERRUPTED, in the caller's transaction
        (a survivor taking over a dead node, or a node restarted: appliance/cluster/nodes.py); not
        deferred: a refusal raises and the takeover is tried again. The count closed."""
        sql, params = _close_interrupted(now, cause, node)
        return int(self.execute(sql, params).rowcount)

    def cdr_node(self, cdr_id: int) -> str:
        """The node that opened a call record ('' before node names, or on one box)."""
        rows = self.query("SELECT node FROM cdr WHERE id = ?", (cdr_id,))
        if not rows:
            raise StoreError(f"cdr {cdr_id} does not exist")
        return str(rows[0][0])

    def get_cdr(self, cdr_id: int) -> Cdr | None:
        """Return one call record, or None."""
        rows = self.query(f"SELECT {', '.join(_CDR_COLUMNS)} FROM cdr WHERE id = ?", (cdr_id,))
        return _cdr_from_row(rows[0]) if rows else None

    def cdrs(self, limit: int = 100, open_only: bool = False) -> list[Cdr]:
        """Return the newest call records first."""
        where = " WHERE end_at IS NULL" if open_only else ""
        rows = self.query(
            f"SELECT {', '.join(_CDR_COLUMNS)} FROM cdr{where} ORDER BY id DESC LIMIT ?",
            (int(limit),),
        )
        return [_cdr_from_row(r) for r in rows]
