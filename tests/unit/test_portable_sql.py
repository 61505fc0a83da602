"""The store's SQL is written once for SQLite and PostgreSQL: a lint over every SQL literal.

Reads each module of appliance/store/ with `ast`, takes every string literal that looks like SQL
(f-strings with their holes as ``{}``; docstrings left out) and fails on the constructs SQLite
accepts and PostgreSQL does not, or runs differently (docs/ARCHITECTURE.md, "The store"). What
the two engines cannot share lives in store/dialect.py, which the lint leaves alone; the SQLite
connection core (db.py) and the database-file operations (dbfile.py) may use the engine's own
statements (PRAGMA, BEGIN IMMEDIATE, its catalogue) and nothing else of it.
"""
from __future__ import annotations

import ast
import hashlib
import re
import sqlite3
from pathlib import Path

import pytest

from appliance.store.dialect import POSTGRESQL, SERIAL_PK, SQLITE
from appliance.store.migrations import MIGRATIONS, SCRIPTS, migrations

STORE = Path(__file__).resolve().parents[2] / "appliance" / "store"
SQL_WORD = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|WHERE|FROM|VALUES|SET|JOIN|LIMIT"
                      r"|PRAGMA|BEGIN|COMMIT|RETURNING|COALESCE|CASE|AND|OR|ORDER BY|GROUP BY)\b")
_BOOLEAN_COLUMN = re.compile(r"^\s*(?:ALTER TABLE \w+ ADD COLUMN\s+)?(\w+) BOOLEAN\b", re.MULTILINE)
BOOLEAN_COLUMNS = sorted({m.group(1) for script in SCRIPTS for m in _BOOLEAN_COLUMN.finditer(script)})

# rule -> (pattern, what to write instead). Case-insensitive.
RULES: dict[str, tuple[str, str]] = {
    "ifnull": (r"\bIFNULL\s*\(", "COALESCE"),
    "insert-or": (r"\bINSERT\s+OR\s+(REPLACE|IGNORE|ABORT|FAIL|ROLLBACK)\b|^\s*REPLACE\s+INTO\b",
                  "INSERT ... ON CONFLICT (key) DO UPDATE / DO NOTHING"),
    "autoincrement": (r"\bAUTOINCREMENT\b", "the {serial_pk} token of store/dialect.py"),
    "blob-type": (r"\bBLOB\b", "the {blob} token of store/dialect.py"),
    "real-type": (r"\bREAL\b", "DOUBLE PRECISION (PostgreSQL's REAL is 4 bytes)"),
    "glob": (r"\bGLOB\b", "LIKE, or a match in Python"),
    "date-function": (r"\b(strftime|datetime|julianday|unixepoch|date|time)\s*\(",
                      "epoch seconds computed in Python"),
    "sqlite-function": (r"\b(group_concat|iif|instr|printf|typeof|zeroblob|randomblob|likelihood"
                        r"|last_insert_rowid|changes|total_changes)\s*\(", "portable SQL or Python"),
    "rowid": (r"\b(rowid|_rowid_|oid)\b|\bWITHOUT\s+ROWID\b", "the id column"),
    "sqlite-catalogue": (r"\bsqlite_(master|schema|sequence|temp_master|stat\d)\b", "Dialect"),
    "pragma": (r"^\s*PRAGMA\b", "the connection core (db.py) only"),
    "begin-mode": (r"\bBEGIN\s+(IMMEDIATE|EXCLUSIVE|DEFERRED)\b", "Store.transaction()"),
    "double-equals": (r"(?<![=!<>])==(?!=)", "="),
    "backtick": (r"`", "plain identifiers (reserved words are avoided)"),
    "double-quoted-string": (r"\"[^\"]*\"", "'text' (PostgreSQL reads \"x\" as an identifier)"),
    "limit-comma": (r"\bLIMIT\s+[\w?{}]+\s*,", "LIMIT n OFFSET m"),
    "cast-integer": (r"\bCAST\s*\([^()]*\bAS\s+INTEGER\s*\)",
                     "FLOOR(x) or Python (SQLite's CAST truncates, PostgreSQL's rounds)"),
    "format-placeholder": (r"%s|%\(\w+\)s", "? (the Dialect converts)"),
    "boolean-as-number": (r"\b(" + "|".join(BOOLEAN_COLUMNS) + r")\s*(=|<>|!=)\s*[01]\b", "TRUE / FALSE"),
}
# LIKE folds ASCII case in SQLite and not in PostgreSQL: both sides through LOWER() run alike.
_LIKE = re.compile(r"\bLIKE\b", re.IGNORECASE)
_LOWER_LIKE = re.compile(r"LOWER\([^()]*\)\s+(NOT\s+)?LIKE\s+LOWER\(", re.IGNORECASE)
# The engine's own statements, allowed where the SQLite engine itself is driven.
ENGINE_ONLY = {
    "db.py": {"pragma", "begin-mode"},
    "dbfile.py": {"pragma", "sqlite-catalogue", "like-case"},
    "dialect.py": set(RULES) | {"like-case"},
}


def problems(sql: str) -> list[str]:
    """The rules `sql` breaks, by name."""
    found = [name for name, (pattern, _fix) in RULES.items()
             if re.search(pattern, sql, re.IGNORECASE | re.MULTILINE)]
    if len(_LIKE.findall(sql)) > len(_LOWER_LIKE.findall(sql)):
        found.append("like-case")
    return found


def _docstrings(tree: ast.AST) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def sql_literals(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string literal in `source` that looks like SQL; f-string holes as {}."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            for part in node.values:
                skip.add(id(part))
            text = "".join(p.value if isinstance(p, ast.Constant) and isinstance(p.value, str) else "{}"
                           for p in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            text = node.value
        else:
            continue
        if SQL_WORD.search(text):
            found.append((node.lineno, text))
    return found


def test_every_sql_literal_in_the_store_is_portable() -> None:
    findings = []
    modules = sorted(STORE.glob("*.py"))
    assert len(modules) > 15
    for path in modules:
        allowed = ENGINE_ONLY.get(path.name, set())
        for line, text in sql_literals(path.read_text()):
            for rule in problems(text):
                if rule not in allowed:
                    fix = RULES[rule][1] if rule in RULES else "LOWER(a) LIKE LOWER(?)"
                    findings.append(f"{path.name}:{line}: {rule} (write {fix}): {text.strip()[:70]!r}")
    assert findings == []


BAD = '''
def f(store):
    store.query("SELECT IFNULL(name, '') FROM extensions")
    store.execute("INSERT OR REPLACE INTO settings (name, value) VALUES (?, ?)", ("a", "b"))
    store.execute("INSERT OR IGNORE INTO contacts (number) VALUES (?)", ("1",))
    store.execute("REPLACE INTO settings (name, value) VALUES (?, ?)", ("a", "b"))
    store.query("SELECT id FROM cdr WHERE caller GLOB '1*'")
    store.query("SELECT strftime('%H', start_at, 'unixepoch') FROM cdr")
    store.query("SELECT id FROM cdr WHERE start_at > datetime('now', '-1 day')")
    store.query("SELECT group_concat(route) FROM extension_dial_permissions")
    store.query("SELECT rowid FROM cdr")
    store.query("SELECT name FROM sqlite_master WHERE type = 'table'")
    store.execute("PRAGMA foreign_keys = ON")
    store.execute("BEGIN IMMEDIATE")
    store.query("SELECT id FROM cdr WHERE id == ?", (1,))
    store.query("SELECT `number` FROM extensions")
    store.query('SELECT id FROM cdr WHERE disposition = "ANSWERED"')
    store.query("SELECT id FROM cdr ORDER BY id LIMIT 10, 20")
    store.query(f"SELECT CAST(placed_at / 3600 AS INTEGER) FROM {table}")
    store.query("SELECT id FROM cdr WHERE caller = %s", ("1",))
    store.query("SELECT number FROM extensions WHERE enabled = 1")
    store.query("SELECT id FROM cdr WHERE caller LIKE ?", ("%1%",))
'''
SCHEMA_BAD = '''
MIGRATIONS = ["""
    CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, data BLOB, score REAL);
"""]
'''


def test_the_lint_fires_on_each_sqlite_only_construct() -> None:
    fired = [problems(text) for _line, text in sql_literals(BAD)]
    assert fired == [
        ["ifnull"], ["insert-or"], ["insert-or"], ["insert-or"], ["glob"], ["date-function"],
        ["date-function"], ["sqlite-function"], ["rowid"], ["sqlite-catalogue"], ["pragma"], ["begin-mode"],
        ["double-equals"], ["backtick"], ["double-quoted-string"], ["limit-comma"], ["cast-integer"],
        ["format-placeholder"], ["boolean-as-number"], ["like-case"],
    ]
    [(_line, ddl)] = sql_literals(SCHEMA_BAD)
    assert problems(ddl) == ["autoincrement", "blob-type", "real-type"]


def test_the_lint_passes_the_portable_spellings_and_skips_docstrings() -> None:
    good = '''
def f(store):
    """Not INSERT OR REPLACE: that deletes the row first. SELECT IFNULL(x) here is prose."""
    store.query("SELECT COALESCE(name, '') FROM extensions WHERE enabled = TRUE AND id = ?", (1,))
    store.execute("INSERT INTO settings (name, value) VALUES (?, ?)"
                  " ON CONFLICT (name) DO UPDATE SET value = excluded.value RETURNING name", ("a", "b"))
    store.query(f"SELECT {cols} FROM cdr WHERE LOWER(caller) LIKE LOWER(?) ESCAPE '\\\\' LIMIT ? OFFSET ?")
    store.query("SELECT CASE WHEN answer_at IS NULL THEN 0 ELSE 1 END FROM cdr WHERE id <> ?", (1,))
'''
    literals = sql_literals(good)
    assert len(literals) == 4
    assert [problems(text) for _line, text in literals] == [[], [], [], []]


def test_booleans_of_the_schema_are_known_to_the_lint() -> None:
    assert {"dnd", "enabled", "heard", "must_change", "register", "voicemail"} <= set(BOOLEAN_COLUMNS)


# -- the Dialect -------------------------------------------------------------------------------
def test_sqlite_migrations_are_byte_for_byte_the_released_scripts() -> None:
    # The scripts as released before the {serial_pk} token (never edit a released migration).
    digest = hashlib.sha256("\x00".join(MIGRATIONS[:9]).encode()).hexdigest()
    assert digest == "8550d02db9d65c972236864708e57869e914affe9e8033a55c8ff9f22936ffd8"
    assert migrations(SQLITE) == MIGRATIONS
    assert all(SERIAL_PK not in script and "{blob}" not in script for script in MIGRATIONS)


def test_postgresql_migrations_use_identity_ids_and_no_sqlite_types() -> None:
    scripts = migrations(POSTGRESQL)
    assert len(scripts) == len(MIGRATIONS)
    text = "\n".join(scripts)
    assert "AUTOINCREMENT" not in text and SERIAL_PK not in text
    # BY DEFAULT: a deferred insert writes the id it was handed (store/writes.py).
    assert text.count("id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY") == \
        "\n".join(SCRIPTS).count(SERIAL_PK)


@pytest.mark.parametrize("sql, converted", [
    ("SELECT a FROM t WHERE b = ? AND c = ?", "SELECT a FROM t WHERE b = %s AND c = %s"),
    ("SELECT '?' || ? FROM t", "SELECT '?' || %s FROM t"),  # a quoted ? is text, not a parameter
    ("SELECT 'it''s ?', ? FROM t", "SELECT 'it''s ?', %s FROM t"),
    ("SELECT name FROM t WHERE name NOT LIKE 'x%' AND id = ?",
     "SELECT name FROM t WHERE name NOT LIKE 'x%%' AND id = %s"),  # psycopg reads every %
])
def test_placeholders_in_postgresql_style(sql: str, converted: str) -> None:
    assert POSTGRESQL.sql(sql) == converted
    assert SQLITE.sql(sql) is sql  # the SQLite hot path is the text itself: no conversion


def test_upsert_is_the_same_statement_in_both_styles() -> None:
    sqlite = SQLITE.upsert_sql("settings", ("name", "value"), ("name",))
    assert sqlite == ("INSERT INTO settings (name, value) VALUES (?, ?)"
                      " ON CONFLICT (name) DO UPDATE SET value = excluded.value")
    assert POSTGRESQL.upsert_sql("settings", ("name", "value"), ("name",)) == sqlite.replace("?", "%s")
    assert problems(sqlite) == []


def test_both_ways_of_learning_a_new_id_give_the_inserted_id() -> None:
    # SQLite runs RETURNING too, so the PostgreSQL way is exercised on a real engine here.
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute(SQLITE.ddl(f"CREATE TABLE t (id {SERIAL_PK}, v TEXT)"))
        ids = [dialect.new_id(conn.execute("INSERT INTO t (v) VALUES (?)" + dialect.returning_id, ("x",)))
               for dialect in (SQLITE, POSTGRESQL, SQLITE)]
    finally:
        conn.close()
    assert ids == [1, 2, 3]
    assert problems("INSERT INTO t (v) VALUES (?)" + POSTGRESQL.returning_id) == []
