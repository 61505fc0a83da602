"""What the store's SQL cannot share between SQLite and PostgreSQL, in one small object.

The store's SQL is hand-written once, in the subset both engines run alike (docs/ARCHITECTURE.md,
"The store"; tests/unit/test_portable_sql.py holds every literal in appliance/store/ to it):
COALESCE, ON CONFLICT ... DO, RETURNING, CASE, TRUE/FALSE, times as epoch seconds computed in
Python. No SQL toolkit: the hot paths (CDR open and close, the queue log, registrations) stay one
prepared statement each with no compile layer in between, and there is one moving part fewer.

A `Dialect` holds the rest: the placeholder style (the source is written with ``?``; psycopg
wants ``%s``), the upsert statement, the DDL types a migration names by token, and the two
catalogue reads (does a table exist, the highest id a table's sequence handed out).
"""
from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# A migration names a type that differs between engines by a token, rendered by `Dialect.ddl`.
SERIAL_PK = "{serial_pk}"  # an id the engine assigns, never reused after rows are purged
BLOB = "{blob}"

# A ``?`` outside quotes: quoted strings and identifiers are skipped whole.
_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?")


@dataclass(frozen=True)
class Dialect:
    """One SQL engine's spelling of what the portable subset leaves open."""

    name: str
    placeholder: str  # as the driver wants it: sqlite3 "?" (qmark), psycopg "%s" (format)
    ddl_types: Mapping[str, str] = field(default_factory=dict)  # token -> type
    table_exists_sql: str = ""  # one parameter: the table's name
    sequence_sql: str = ""  # one parameter: the table's name; the highest id it handed out
    # How the hot path's inserts (CDR open, recording start: store/writes.py) learn the new id:
    # appended to the INSERT, then read by `new_id`. Elsewhere the store writes RETURNING id.
    returning_id: str = ""
    # Where several engines share the database: ids taken from ``{table}``'s own sequence (one
    # parameter: how many), kept by the Store for inserts deferred while the server is away
    # (store/writes.py, `insert_row`). Empty: one engine, whose ids go on from the table's top.
    reserve_ids_sql: str = ""
    # How a transaction begins: for writes, and for a read-only consistent snapshot.
    begin_write: str = "BEGIN"
    begin_read: str = "BEGIN"
    # SQLite's durability and lock wait are connection-wide PRAGMAs, set before BEGIN and put back
    # after; PostgreSQL's are SET LOCAL inside the transaction and end with it.
    connection_pragmas: bool = False
    # Run first in a migration's transaction, so two processes opening a fresh database apply
    # each migration once: SQLite's BEGIN IMMEDIATE already holds the write lock.
    migration_lock: str = ""
    # Run inside a transaction that changed the configuration, so the site's other engines reload
    # it (store/notify.py); empty where one engine owns the database (SQLite).
    config_notify: str = ""

    def transaction_sql(self, read_only: bool, durable: bool, busy_ms: int | None,
                        default_busy_ms: int) -> tuple[list[str], str, list[str]]:
        """What a transaction runs before it, to begin it, and after its end.

        ``durable``: the commit is on disk when it returns (SQLite ``synchronous=FULL``, the
        connection's default being NORMAL; PostgreSQL ``synchronous_commit`` on, its default,
        and off otherwise). ``busy_ms``: how long to wait for another writer's lock. On
        PostgreSQL the begin is one round trip: BEGIN and its SET LOCALs in one simple query.
        """
        begin = self.begin_read if read_only else self.begin_write
        before: list[str] = []
        after: list[str] = []
        if self.connection_pragmas:
            if durable:
                before.append("PRAGMA synchronous = FULL")
                after.append("PRAGMA synchronous = NORMAL")
            if busy_ms is not None:
                before.append(f"PRAGMA busy_timeout = {int(busy_ms)}")
                after.append(f"PRAGMA busy_timeout = {int(default_busy_ms)}")
            return before, begin, after
        inside = [begin]
        if not durable:
            inside.append("SET LOCAL synchronous_commit = off")
        if busy_ms is not None:
            inside.append(f"SET LOCAL lock_timeout = {int(busy_ms)}")
        return before, "; ".join(inside), after

    def sql(self, text: str) -> str:
        """`text`, written with ``?`` placeholders, in this dialect's placeholder style."""
        return text if self.placeholder == "?" else _convert(text, self.placeholder)

    def upsert_sql(self, table: str, columns: Sequence[str], key: Sequence[str]) -> str:
        """INSERT ... ON CONFLICT (key) DO UPDATE: SQLite >= 3.24 and PostgreSQL >= 9.5 alike.

        In this dialect's placeholders, for the driver itself; the store's modules pass
        `upsert_sql` (the ``?`` text) to `Store.execute`, which converts every statement.

        Not ``INSERT OR REPLACE``: that deletes the row first, which would cascade to dial
        permissions (and PostgreSQL has no such statement).
        """
        return _upsert(self.placeholder, table, tuple(columns), tuple(key))

    def new_id(self, cursor: Any) -> int | None:
        """The id of the row the INSERT on `cursor` (ending with `returning_id`) added."""
        if not self.returning_id:
            return cursor.lastrowid  # type: ignore[no-any-return]
        row = cursor.fetchone()
        return int(row[0]) if row else None

    def ddl(self, script: str) -> str:
        """A migration script with its type tokens (SERIAL_PK, BLOB) in this dialect's types."""
        for token, spelled in self.ddl_types.items():
            script = script.replace(token, spelled)
        return script


def upsert_sql(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    """The upsert written with ``?`` like the rest of the store's SQL (`Store.execute` converts)."""
    return _upsert("?", table, tuple(columns), tuple(key))


@functools.lru_cache(maxsize=256)
def _upsert(placeholder: str, table: str, columns: tuple[str, ...], key: tuple[str, ...]) -> str:
    # Cached: a registration refresh or a block is an upsert in the SIP loop, built once here.
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    sql = (f"INSERT INTO {table} ({', '.join(columns)}) "
           f"VALUES ({', '.join('?' for _ in columns)}) "
           f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}")
    return sql if placeholder == "?" else _convert(sql, placeholder)


@functools.lru_cache(maxsize=1024)
def _convert(text: str, placeholder: str) -> str:
    # Cached: the same few hundred statements run again and again, converted once each. In the
    # format style a literal % (LIKE 'a%') must be doubled, quoted or not (the driver reads it all).
    if "%" in placeholder:
        text = text.replace("%", "%%")
    return _PLACEHOLDER.sub(lambda m: placeholder if m.group(0) == "?" else m.group(0), text)


SQLITE = Dialect(
    name="sqlite",
    placeholder="?",
    # AUTOINCREMENT: an id is never reused after rows are purged (CDR ids in billing exports, an
    # interaction id handed to the web app); https://www.sqlite.org/autoinc.html.
    ddl_types={SERIAL_PK: "INTEGER PRIMARY KEY AUTOINCREMENT", BLOB: "BLOB"},
    table_exists_sql="SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
    sequence_sql="SELECT seq FROM sqlite_sequence WHERE name = ?",
    # The cursor's lastrowid: RETURNING id would cost the CDR open 3.5 us more (16 -> 19 us for
    # the bare INSERT + COMMIT, median of 6,000 on the development box).
    returning_id="",
    # IMMEDIATE takes the write lock at once, so a concurrent writer waits on busy_timeout
    # instead of failing at commit; a plain (deferred) BEGIN reads a snapshot without blocking.
    begin_write="BEGIN IMMEDIATE",
    begin_read="BEGIN",
    connection_pragmas=True,
)

POSTGRESQL = Dialect(
    name="postgresql",
    placeholder="%s",
    # BY DEFAULT, not ALWAYS: a write deferred on a storage fault inserts the id it was handed
    # (store/writes.py, `insert_row`: one reserved from this sequence). Identity sequences never
    # hand out an id twice either.
    ddl_types={SERIAL_PK: "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", BLOB: "BYTEA"},
    table_exists_sql=("SELECT 1 FROM information_schema.tables"
                      " WHERE table_schema = current_schema() AND table_name = %s"),
    returning_id=" RETURNING id",  # a psycopg cursor's lastrowid is an OID, not the id
    begin_write="BEGIN",  # row locks come with the statements; lock_timeout bounds the wait
    begin_read="BEGIN ISOLATION LEVEL REPEATABLE READ",  # one snapshot, as SQLite's deferred read
    # BEGIN takes no lock, and a concurrent CREATE TABLE IF NOT EXISTS can still fail on the
    # catalogue: a transaction-scoped advisory lock (any fixed key; "plat" in ASCII) serialises
    # the openers before they look at schema_version.
    migration_lock="SELECT pg_advisory_xact_lock(1886151028)",
    # Delivered at commit, never before, and folded into one per transaction (store/notify.py).
    config_notify="NOTIFY plateau_config",
    # nextval hands each id out once, to whichever session asks (https://www.postgresql.org/docs/15/
    # functions-sequence.html): ids reserved so are never another engine's, nor the table's own later.
    reserve_ids_sql="SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, ?)",
)
