"""Databases on a PostgreSQL server: create one for a site (`scripts/cluster`, the tests), drop one.

The server's own catalogue, not a site's tables: these run on the maintenance database
``postgres`` in autocommit (CREATE DATABASE cannot run inside a transaction).
"""
from __future__ import annotations


def _checked(name: str) -> str:
    # An identifier is spliced into the statement (it cannot be a bound parameter): plain names only.
    if not (name.isidentifier() and name.isascii()):
        raise ValueError(f"{name!r} is not a plain database name")
    return name


def create_database(server_url: str, name: str) -> None:
    """Create database NAME on the server of SERVER_URL (a connection to its maintenance database)
    unless it exists."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        try:
            conn.execute(f"CREATE DATABASE {_checked(name)}")  # type: ignore[arg-type]
        except psycopg.errors.DuplicateDatabase:
            pass  # made by an earlier `up`: the site's data stays


def drop_database(server_url: str, name: str) -> None:
    """Drop database NAME, ending its sessions (PostgreSQL 13+ ``WITH (FORCE)``); no error if absent."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {_checked(name)} WITH (FORCE)")  # type: ignore[arg-type]
