"""PostgreSQL streaming replication of two-box HA (appliance/cluster/ha.py): roles, recovery, lag."""
from __future__ import annotations

from typing import Any

from appliance.store.dialect import POSTGRESQL
from appliance.store.postgres import redacted


def _connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=3)


def prepare_primary(url: str, *, database: str, db_user: str, db_password: str,
                    replication_user: str, replication_password: str) -> None:
    """On the first primary: the engine's role and database, and the role the standby streams as.

    Idempotent: a role that exists gets the password again, a database that exists is kept.
    `url` is a superuser's connection (the local socket as postgres on a real box).
    """
    from psycopg import sql

    with _connect(url) as conn:
        for user, password, attrs in ((db_user, db_password, sql.SQL("LOGIN")),
                                      (replication_user, replication_password, sql.SQL("LOGIN REPLICATION"))):
            exists = conn.execute(POSTGRESQL.sql("SELECT 1 FROM pg_roles WHERE rolname = ?"), (user,)).fetchone()
            verb = sql.SQL("ALTER ROLE") if exists else sql.SQL("CREATE ROLE")
            conn.execute(sql.SQL("{} {} WITH {} PASSWORD {}").format(
                verb, sql.Identifier(user), attrs, sql.Literal(password)))
        if conn.execute(POSTGRESQL.sql("SELECT 1 FROM pg_database WHERE datname = ?"), (database,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(database), sql.Identifier(db_user)))


def in_recovery(url: str) -> bool:
    """True while the server at `url` is a standby (replaying WAL), False once it is a primary."""
    with _connect(url) as conn:
        row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    if row is None:
        raise RuntimeError(f"{redacted(url)}: pg_is_in_recovery() returned no row")
    return bool(row[0])


def standby_caught_up(primary_url: str, application_name: str) -> bool:
    """True when the standby `application_name` streams from this primary and has replayed all of
    the WAL the primary has written so far (nothing committed here would be lost by a failover)."""
    with _connect(primary_url) as conn:
        row = conn.execute(POSTGRESQL.sql(
            "SELECT replay_lsn >= pg_current_wal_flush_lsn() FROM pg_stat_replication"
            " WHERE application_name = ? AND state = 'streaming'"), (application_name,)).fetchone()
    return bool(row and row[0])
