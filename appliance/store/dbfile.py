"""The database as a file: what backup, restore and update do to a SQLite file no Store has open.

An open `Store` (store/db.py) is the only way the engine and the web app read and write rows;
these functions work on the file itself: an online copy, the checks before a restore, the
schema version read without migrating, the rollback of an update. They are the SQLite engine's
side of the store (PRAGMA, sqlite_master, the backup API), which is why they sit here beside the
connection core and not in appliance/system/ (docs/ARCHITECTURE.md: SQL only in appliance/store).
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

from appliance.store.migrations import MIGRATIONS, split_script


def snapshot_database(db: Path, dest: Path) -> None:
    """Copy a live database to `dest` with SQLite's online backup API: a consistent picture even
    while the engine writes (WAL); the copy is a single self-contained file (journal_mode DELETE)."""
    # Read-write on purpose: a read-only connection cannot open a WAL database whose -shm is gone.
    src = sqlite3.connect(db)
    try:
        out = sqlite3.connect(dest)
        try:
            src.backup(out)
            out.execute("PRAGMA journal_mode = DELETE")
        finally:
            out.close()
    finally:
        src.close()


def restore_snapshot(snapshot: Path, db: Path) -> None:
    """Put a snapshot back into the live database (backup API: one transaction, WAL-safe)."""
    src = sqlite3.connect(f"file:{snapshot}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(db)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode = WAL")  # the Store's mode (store/db.py)
        finally:
            dst.close()
    finally:
        src.close()


def expected_tables(schema_version: int) -> set[str]:
    """The tables a database at `schema_version` has: the migrations replayed in memory."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION)")
        for script in MIGRATIONS[:schema_version]:
            for statement in split_script(script):
                conn.execute(statement)
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                           " AND name NOT LIKE 'sqlite_%'")}
    finally:
        conn.close()


class DatabaseFileError(Exception):
    """A database file that cannot be used; the message says why."""


def inspect_database(path: Path) -> tuple[int, set[str]]:
    """(schema version, tables) of a database file, opened read-only (an archived database is a
    single file in rollback-journal mode). Raises DatabaseFileError naming the problem."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise DatabaseFileError(f"cannot be opened: {exc}") from exc
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
        if [r[0] for r in rows] != ["ok"]:
            raise DatabaseFileError("integrity check failed: " + "; ".join(str(r[0]) for r in rows[:5]))
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "schema_version" not in tables:
            raise DatabaseFileError("no schema_version table (not a Plateau database)")
        version = int(conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0)
    except sqlite3.Error as exc:
        raise DatabaseFileError(f"not a readable SQLite database: {exc}") from exc
    finally:
        conn.close()
    return version, tables


def schema_version_of(db: Path) -> int | None:
    """The schema version of the database file `db`, read directly (a Store would migrate or
    refuse it); None when the file is missing or is no Plateau database."""
    if not db.exists():
        return None
    # Read-write on purpose: as the last connection it checkpoints and removes the -wal and
    # -shm files on close (a read-only one would leave them behind), and it sees commits
    # still in the WAL after an engine crash (immutable=1 would not).
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    except sqlite3.DatabaseError:
        return None
    finally:
        conn.close()
    return int(row[0] or 0)


def relocate_voicemail(db: Path, old_prefix: str, new_prefix: str) -> None:
    """Voicemail rows hold absolute paths: rewrite those under `old_prefix` to `new_prefix`."""
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.execute("UPDATE voicemail SET path = ? || substr(path, ?) WHERE substr(path, 1, ?) = ?",
                         (new_prefix, len(old_prefix) + 1, len(old_prefix), old_prefix))
    finally:
        conn.close()


def table_counts(db: Path, tables: list[str]) -> dict[str, int | None]:
    """Rows of each of `tables` in the database file `db`, opened read-only (None: no such table,
    an archive of an older schema). Raises DatabaseFileError when the file cannot be read."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise DatabaseFileError(f"cannot be opened: {exc}") from exc
    try:
        present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        # The names come from the store's own list (store/backups.py DATA_TABLES), never input.
        return {t: int(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) if t in present else None
                for t in tables}
    except sqlite3.Error as exc:
        raise DatabaseFileError(f"not a readable SQLite database: {exc}") from exc
    finally:
        conn.close()
