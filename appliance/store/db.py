"""The SQLite store: configuration, registrations, CDR and blocked addresses.

Durability (ARCHITECTURE.md: "every write that matters is committed before it is
acknowledged"): the database runs in WAL mode with ``synchronous=NORMAL``, which
survives an engine crash but may lose the last commits on power loss (SQLite,
https://www.sqlite.org/pragma.html#pragma_synchronous: "WAL mode is always consistent
with synchronous=NORMAL, but WAL mode does lose durability. A transaction committed in
WAL mode with synchronous=NORMAL might roll back following a power loss or system
crash."). Writes whose loss would matter after a power cut (configuration, CDR close,
recordings) switch the connection to ``synchronous=FULL`` for their commit, so the WAL
is fsynced before the method returns ("an additional sync operation of the WAL file
happens after each transaction commit"); because the WAL is sequential, that fsync
also persists any earlier NORMAL commits. A call start (CDR open) is committed NORMAL
in the SIP loop and fsynced by the WAL syncer thread right after (deferred.WalSyncer):
a power cut loses no call start older than that fsync, measured at 1.8 ms mean and
8.6 ms max at 200 calls (bench/pbx_load.py, ``wal_sync``; the open itself costs the loop
0.5 ms), while FULL in the loop cost each open 2.1 ms instead of 0.6 ms at 100 calls.
Registrations, answer times and blocks stay NORMAL:
phones re-register, a lost answer time is rewritten by the durable close, and a lost
block is re-earned by the attacker's next failures.

Storage faults (disk full, I/O error, the web app's write lock held past
``write_busy_ms``) never fail a call: the engine's writes go through `record_write` /
`insert_row`, which keep a refused write in order in memory and replay it later
(appliance/store/writes.py, appliance/store/deferred.py).

Threads: one connection per Store, guarded by a lock, so the engine may hand it
between threads; another process (the web app) opens its own Store and WAL lets it
read while the engine writes (``busy_timeout`` covers short write overlaps).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, Self

from appliance.store.deferred import DEFAULT_LIMIT
from appliance.schema.errors import invalid
from appliance.store.errors import ConfigError, StoreError
from appliance.store.migrations import MIGRATIONS
from appliance.store.models import (
    DIRECTIONS,
    DISPOSITIONS,
    BlockedAddress,
    Cdr,
    Extension,
    InboundRoute,
    OutboundRoute,
    Registration,
    Trunk,
)
from appliance.store.validation import (
    check_extension,
    check_inbound_route,
    check_outbound_route,
    check_record_types,
    check_setting,
    check_trunk,
    IVR_PREFIX,
    QUEUE_PREFIX,
    VOICEMAIL_PREFIX,
)
from appliance.store.writes import WRITE_BUSY_MS, DeferredWriting

_EXTENSION_COLUMNS = (
    "number", "name", "secret", "dnd", "forward_always", "forward_busy", "forward_noanswer",
    "noanswer_seconds", "external_caller_id", "enabled", "recording", "voicemail",
)
_TRUNK_COLUMNS = (
    "name", "host", "port", "transport", "username", "secret", "register", "register_expires",
    "from_domain", "caller_id", "enabled",
)
_INBOUND_COLUMNS = ("did", "destination")
_OUTBOUND_COLUMNS = ("name", "pattern", "trunk", "strip", "prepend", "caller_id", "priority")
_REGISTRATION_COLUMNS = (
    "aor", "contact", "source_host", "source_port", "transport", "expires_at", "user_agent",
    "call_id", "cseq",
)
_CDR_COLUMNS = (
    "id", "call_id", "start_at", "answer_at", "end_at", "caller", "caller_name", "callee",
    "direction", "disposition", "hangup_cause", "duration", "billsec", "trunk",
)
_BOOL_COLUMNS = frozenset({"dnd", "enabled", "register", "voicemail"})
INTERRUPTED_CAUSE = "interrupted: engine stopped during the call"


def _upsert_sql(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    """INSERT ... ON CONFLICT DO UPDATE: valid in SQLite >= 3.24 and PostgreSQL.

    Not ``INSERT OR REPLACE``: that deletes the row first, which would cascade to
    dial permissions.
    """
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' for _ in columns)}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )


def _split_script(script: str) -> list[str]:
    """Split a migration script into statements (sqlite3.complete_statement aware)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in buffer.splitlines()
    ):
        raise StoreError(f"migration has an unterminated statement: {buffer.strip()[:60]!r}")
    return statements


def _row_values(record: Any, columns: Sequence[str]) -> list[Any]:
    return [getattr(record, c) for c in columns]


def _from_row(cls: type, columns: Sequence[str], row: Sequence[Any], **extra: Any) -> Any:
    values = {
        c: (bool(v) if c in _BOOL_COLUMNS else v) for c, v in zip(columns, row, strict=True)
    }
    return cls(**values, **extra)


def _cdr_from_row(row: Sequence[Any]) -> Cdr:
    v = dict(zip(_CDR_COLUMNS, row, strict=True))
    return Cdr(
        id=v["id"], call_id=v["call_id"], start=v["start_at"], answer=v["answer_at"],
        end=v["end_at"], caller=v["caller"], caller_name=v["caller_name"], callee=v["callee"],
        direction=v["direction"], disposition=v["disposition"], hangup_cause=v["hangup_cause"],
        duration=v["duration"], billsec=v["billsec"], trunk=v["trunk"],
    )


class Store(DeferredWriting):
    """The appliance database. Every public method commits before it returns."""

    def __init__(self, path: pathlib.Path, *, busy_timeout_ms: int = 5000,
                 write_busy_ms: int = WRITE_BUSY_MS, pending_limit: int = DEFAULT_LIMIT) -> None:
        """Open (creating if needed, mode 0600: it holds secrets) and migrate ``path``.

        ``write_busy_ms`` bounds how long a deferrable write (`record_write`) waits for another
        connection's write lock before it is deferred; ``pending_limit`` bounds the deferred queue.
        """
        self.path = pathlib.Path(path)
        self.busy_timeout_ms = int(busy_timeout_ms)
        self._init_deferred(write_busy_ms, pending_limit)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        self._lock = threading.RLock()
        self._depth = 0
        self._conn = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False,
            timeout=busy_timeout_ms / 1000.0,
        )
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self._enable_wal(busy_timeout_ms / 1000.0)
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except BaseException:
            self._conn.close()
            raise

    # -- connection and transactions -------------------------------------------------

    def _enable_wal(self, timeout: float) -> None:
        """Switch to WAL (persistent in the file, so usually already on).

        The switch needs an exclusive lock and SQLite returns "database is locked"
        at once, without its busy handler, when another connection is opening the
        same fresh file; so retry until ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                mode = self._conn.execute("PRAGMA journal_mode").fetchone()[0]
                if mode.lower() != "wal":
                    mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
                continue
            if mode.lower() != "wal":
                raise StoreError(f"{self.path}: cannot enable WAL (journal_mode={mode})")
            return

    def close(self) -> None:
        """Flush what was deferred (one last try) and close; the Store cannot be used afterwards."""
        self._stop_deferred()
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self, *, durable: bool = True, read_only: bool = False,
                    busy_ms: int | None = None) -> Iterator[None]:
        """Group several writes into one transaction (nested calls join the outer one).

        ``BEGIN IMMEDIATE`` takes the write lock at once so a concurrent writer waits
        on ``busy_timeout`` instead of failing at commit. ``durable`` fsyncs the WAL
        on commit (``synchronous=FULL``). ``read_only`` opens a deferred transaction:
        a consistent snapshot that does not block writers. ``busy_ms`` replaces the busy
        timeout for this transaction (a short one for the engine loop's deferrable writes).
        """
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            durable = durable and not read_only
            if durable:
                self._conn.execute("PRAGMA synchronous = FULL")
            if busy_ms is not None:
                self._conn.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
            try:
                self._conn.execute("BEGIN" if read_only else "BEGIN IMMEDIATE")
                self._depth = 1
                try:
                    yield
                    self._conn.execute("COMMIT")
                except BaseException:
                    if self._conn.in_transaction:
                        # After SQLITE_FULL or an I/O error SQLite may have rolled back already.
                        with contextlib.suppress(sqlite3.OperationalError):
                            self._conn.execute("ROLLBACK")
                    raise
                finally:
                    self._depth = 0
            finally:
                if busy_ms is not None:
                    self._conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
                if durable:
                    self._conn.execute("PRAGMA synchronous = NORMAL")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._conn.execute(sql, params)

    def schema_version(self) -> int:
        """Return the number of migrations applied."""
        row = self.query("SELECT MAX(version) FROM schema_version")[0]
        return int(row[0] or 0)

    def _migrate(self) -> None:
        """Apply pending migrations, each in its own transaction.

        The version is re-read after ``BEGIN IMMEDIATE`` so two processes opening a
        fresh database at once apply each migration only once.
        """
        exists = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        if exists:
            # Fast path without the write lock: a reader (the web app) opening while
            # the engine is inside a transaction must not wait for it.
            current = self._conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
            if current == len(MIGRATIONS):
                return
        else:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
            )
        while True:
            with self.transaction():
                current = int(
                    self.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
                )
                if current > len(MIGRATIONS):
                    raise StoreError(
                        f"{self.path}: schema version {current} is newer than this software "
                        f"({len(MIGRATIONS)}); refusing to open"
                    )
                if current == len(MIGRATIONS):
                    return
                for statement in _split_script(MIGRATIONS[current]):
                    self.execute(statement)
                self.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                    (current + 1, time.time()),
                )

    # -- settings ----------------------------------------------------------------------

    def get_setting(self, name: str, default: str | None = None) -> str | None:
        """Return a setting's value, or ``default`` when unset."""
        rows = self.query("SELECT value FROM settings WHERE name = ?", (name,))
        return rows[0][0] if rows else default

    def set_setting(self, name: str, value: str) -> None:
        """Create or replace a setting."""
        check_setting(name, value)
        with self.transaction():
            self.execute(_upsert_sql("settings", ("name", "value"), ("name",)), (name, value))

    def delete_setting(self, name: str) -> bool:
        """Delete a setting; return whether it existed."""
        with self.transaction():
            return self.execute("DELETE FROM settings WHERE name = ?", (name,)).rowcount > 0

    def settings(self) -> dict[str, str]:
        """Return every setting, sorted by name."""
        return dict(self.query("SELECT name, value FROM settings ORDER BY name"))

    # -- extensions --------------------------------------------------------------------

    def _permissions(self, number: str | None = None) -> dict[str, list[str]]:
        sql = "SELECT extension, route FROM extension_dial_permissions"
        params: tuple[str, ...] = ()
        if number is not None:
            sql += " WHERE extension = ?"
            params = (number,)
        result: dict[str, list[str]] = {}
        for ext, route in self.query(sql + " ORDER BY extension, route", params):
            result.setdefault(ext, []).append(route)
        return result

    def extensions(self) -> list[Extension]:
        """Return every extension, ordered by number."""
        with self._lock:
            perms = self._permissions()
            rows = self.query(
                f"SELECT {', '.join(_EXTENSION_COLUMNS)} FROM extensions ORDER BY number"
            )
        return [
            _from_row(Extension, _EXTENSION_COLUMNS, r, dial_permissions=perms.get(r[0], []))
            for r in rows
        ]

    def get_extension(self, number: str) -> Extension | None:
        """Return one extension, or None."""
        with self._lock:
            rows = self.query(
                f"SELECT {', '.join(_EXTENSION_COLUMNS)} FROM extensions WHERE number = ?",
                (number,),
            )
            if not rows:
                return None
            perms = self._permissions(number).get(number, [])
        return _from_row(Extension, _EXTENSION_COLUMNS, rows[0], dial_permissions=perms)

    def put_extension(self, ext: Extension) -> None:
        """Create or update an extension; its dial permissions must name existing routes."""
        check_extension(ext)
        with self.transaction():
            known = {r[0] for r in self.execute("SELECT name FROM outbound_routes")}
            for i, route in enumerate(ext.dial_permissions):
                if route not in known:
                    raise invalid(f"outbound route {route!r} does not exist", "extension", "dial_permissions", i)
            self.execute(
                _upsert_sql("extensions", _EXTENSION_COLUMNS, ("number",)),
                _row_values(ext, _EXTENSION_COLUMNS),
            )
            self.execute("DELETE FROM extension_dial_permissions WHERE extension = ?", (ext.number,))
            for route in ext.dial_permissions:
                self.execute(
                    "INSERT INTO extension_dial_permissions (extension, route) VALUES (?, ?)",
                    (ext.number, route),
                )

    def delete_extension(self, number: str) -> bool:
        """Delete an extension; refused while an inbound route points at it."""
        with self.transaction():
            targets = (number, f"{VOICEMAIL_PREFIX}{number}")
            dids = [r[0] for r in self.execute(
                "SELECT did FROM inbound_routes WHERE destination IN (?, ?) ORDER BY did", targets
            )]
            if dids:
                raise ConfigError(
                    f"extension {number}: inbound route(s) {', '.join(dids)} point at it"
                )
            queues = [r[0] for r in self.execute(
                "SELECT name FROM queues WHERE overflow IN (?, ?) ORDER BY name", targets
            )]
            if queues:
                raise ConfigError(f"extension {number}: queue(s) {', '.join(queues)} overflow to it")
            return self.execute("DELETE FROM extensions WHERE number = ?", (number,)).rowcount > 0

    # -- trunks ------------------------------------------------------------------------

    def trunks(self) -> list[Trunk]:
        """Return every trunk, ordered by name."""
        rows = self.query(f"SELECT {', '.join(_TRUNK_COLUMNS)} FROM trunks ORDER BY name")
        return [_from_row(Trunk, _TRUNK_COLUMNS, r) for r in rows]

    def get_trunk(self, name: str) -> Trunk | None:
        """Return one trunk, or None."""
        rows = self.query(
            f"SELECT {', '.join(_TRUNK_COLUMNS)} FROM trunks WHERE name = ?", (name,)
        )
        return _from_row(Trunk, _TRUNK_COLUMNS, rows[0]) if rows else None

    def put_trunk(self, trunk: Trunk) -> None:
        """Create or update a trunk."""
        check_trunk(trunk)
        with self.transaction():
            self.execute(
                _upsert_sql("trunks", _TRUNK_COLUMNS, ("name",)), _row_values(trunk, _TRUNK_COLUMNS)
            )

    def delete_trunk(self, name: str) -> bool:
        """Delete a trunk; refused while an outbound route uses it."""
        with self.transaction():
            routes = [r[0] for r in self.execute(
                "SELECT name FROM outbound_routes WHERE trunk = ? ORDER BY name", (name,)
            )]
            if routes:
                raise ConfigError(f"trunk {name}: outbound route(s) {', '.join(routes)} use it")
            return self.execute("DELETE FROM trunks WHERE name = ?", (name,)).rowcount > 0

    # -- inbound routes ----------------------------------------------------------------

    def inbound_routes(self) -> list[InboundRoute]:
        """Return every inbound route, ordered by DID."""
        rows = self.query("SELECT did, destination FROM inbound_routes ORDER BY did")
        return [_from_row(InboundRoute, _INBOUND_COLUMNS, r) for r in rows]

    def get_inbound_route(self, did: str) -> InboundRoute | None:
        """Return the route for one DID, or None."""
        rows = self.query("SELECT did, destination FROM inbound_routes WHERE did = ?", (did,))
        return _from_row(InboundRoute, _INBOUND_COLUMNS, rows[0]) if rows else None

    def put_inbound_route(self, route: InboundRoute) -> None:
        """Create or update an inbound route; its destination extension must exist."""
        check_inbound_route(route)
        with self.transaction():
            self._check_destination(route.destination, "inbound_route", "destination")
            self.execute(
                _upsert_sql("inbound_routes", _INBOUND_COLUMNS, ("did",)),
                _row_values(route, _INBOUND_COLUMNS),
            )

    def _check_destination(self, destination: str, *loc: str) -> None:
        """Raise ConfigError unless the extension, queue or mailbox a destination names exists."""
        if destination.startswith(IVR_PREFIX):
            return  # flows are files, validated when loaded
        if destination.startswith(QUEUE_PREFIX):
            name = destination[len(QUEUE_PREFIX):]
            if not self.execute("SELECT 1 FROM queues WHERE name = ?", (name,)).fetchone():
                raise invalid(f"queue {name!r} does not exist", *loc)
            return
        number = destination.removeprefix(VOICEMAIL_PREFIX)
        if not self.execute("SELECT 1 FROM extensions WHERE number = ?", (number,)).fetchone():
            raise invalid(f"extension {number!r} does not exist", *loc)

    def delete_inbound_route(self, did: str) -> bool:
        """Delete an inbound route; return whether it existed."""
        with self.transaction():
            return self.execute("DELETE FROM inbound_routes WHERE did = ?", (did,)).rowcount > 0

    # -- outbound routes ---------------------------------------------------------------

    def outbound_routes(self) -> list[OutboundRoute]:
        """Return every outbound route, ordered by priority then name."""
        rows = self.query(
            f"SELECT {', '.join(_OUTBOUND_COLUMNS)} FROM outbound_routes ORDER BY priority, name"
        )
        return [_from_row(OutboundRoute, _OUTBOUND_COLUMNS, r) for r in rows]

    def get_outbound_route(self, name: str) -> OutboundRoute | None:
        """Return one outbound route, or None."""
        rows = self.query(
            f"SELECT {', '.join(_OUTBOUND_COLUMNS)} FROM outbound_routes WHERE name = ?", (name,)
        )
        return _from_row(OutboundRoute, _OUTBOUND_COLUMNS, rows[0]) if rows else None

    def put_outbound_route(self, route: OutboundRoute) -> None:
        """Create or update an outbound route; its trunk must exist."""
        check_outbound_route(route)
        with self.transaction():
            if not self.execute("SELECT 1 FROM trunks WHERE name = ?", (route.trunk,)).fetchone():
                raise invalid(f"trunk {route.trunk!r} does not exist", "outbound_route", "trunk")
            self.execute(
                _upsert_sql("outbound_routes", _OUTBOUND_COLUMNS, ("name",)),
                _row_values(route, _OUTBOUND_COLUMNS),
            )

    def delete_outbound_route(self, name: str) -> bool:
        """Delete an outbound route (and every extension's permission to use it)."""
        with self.transaction():
            return self.execute("DELETE FROM outbound_routes WHERE name = ?", (name,)).rowcount > 0

    def replace_config(
        self,
        extensions: Sequence[Extension],
        trunks: Sequence[Trunk],
        inbound_routes: Sequence[InboundRoute],
        outbound_routes: Sequence[OutboundRoute],
        settings: dict[str, str],
    ) -> None:
        """Replace the whole configuration in one transaction (all or nothing)."""
        with self.transaction():
            for table in ("extension_dial_permissions", "inbound_routes", "extensions",
                          "outbound_routes", "trunks", "settings"):
                self.execute(f"DELETE FROM {table}")
            for trunk in trunks:
                self.put_trunk(trunk)
            for route in outbound_routes:
                self.put_outbound_route(route)
            for ext in extensions:
                self.put_extension(ext)
            for inbound in inbound_routes:
                self.put_inbound_route(inbound)
            for name, value in settings.items():
                self.set_setting(name, value)

    # -- registrations -----------------------------------------------------------------

    def save_registration(self, reg: Registration) -> None:
        """Insert or refresh a contact binding (keyed on aor + contact); deferred on a fault."""
        check_record_types(reg, "registration")
        self.record_write("registration", [(
            _upsert_sql("registrations", _REGISTRATION_COLUMNS, ("aor", "contact")),
            _row_values(reg, _REGISTRATION_COLUMNS),
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
        return [_from_row(Registration, _REGISTRATION_COLUMNS, r) for r in rows]

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
            "cdr_open", "cdr", ("call_id", "start_at", "caller", "caller_name", "callee", "direction", "trunk"),
            (call_id, start, caller, caller_name, callee, direction, trunk), sync_soon=True)

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
        def check(cursors: list[sqlite3.Cursor]) -> None:
            if not cursors[0].rowcount:
                raise self._cdr_refusal(cdr_id)

        self.record_write("cdr_answer", [(
            "UPDATE cdr SET answer_at = ? WHERE id = ? AND answer_at IS NULL AND end_at IS NULL",
            (t, cdr_id),
        )], check=check, expect_row=True)

    def cdr_close(self, cdr_id: int, end: float, disposition: str, hangup_cause: str | None) -> None:
        """Close an open call record (durably), computing duration and billsec.

        Times are wall clock; if the clock stepped back during the call the durations are
        clamped at 0 rather than losing the record. The durations are computed in the UPDATE
        itself, so a close deferred by a storage fault is right whenever it is replayed.
        """
        if disposition not in DISPOSITIONS:
            raise StoreError(f"cdr disposition {disposition!r} is not one of {DISPOSITIONS}")

        def check(cursors: list[sqlite3.Cursor]) -> None:
            if not cursors[0].rowcount:
                raise self._cdr_refusal(cdr_id, disposition)

        self.record_write("cdr_close", [(
            "UPDATE cdr SET end_at = ?, disposition = ?, hangup_cause = ?,"
            " duration = CASE WHEN ? > start_at THEN ? - start_at ELSE 0.0 END,"
            " billsec = CASE WHEN answer_at IS NULL OR ? <= answer_at THEN 0.0 ELSE ? - answer_at END"
            " WHERE id = ? AND end_at IS NULL AND (? <> 'ANSWERED' OR answer_at IS NOT NULL)",
            (end, disposition, hangup_cause, end, end, end, end, cdr_id, disposition),
        )], durable=True, check=check, expect_row=True)

    def close_interrupted(self, now: float) -> int:
        """Close every open CDR as INTERRUPTED at ``now`` (call at engine start); return count
        (0 when deferred: an engine restarted on a full disk still starts and takes calls)."""
        changed: list[int] = []
        self.record_write("cdr_close", [(
            "UPDATE cdr SET end_at = ?, disposition = 'INTERRUPTED', hangup_cause = ?,"
            " duration = CASE WHEN ? > start_at THEN ? - start_at ELSE 0 END,"
            " billsec = CASE WHEN answer_at IS NULL OR ? <= answer_at THEN 0"
            " ELSE ? - answer_at END"
            " WHERE end_at IS NULL",
            (now, INTERRUPTED_CAUSE, now, now, now, now),
        )], durable=True, check=lambda cursors: changed.append(cursors[0].rowcount))
        return changed[0] if changed else 0

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
