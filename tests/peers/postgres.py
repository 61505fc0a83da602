"""A private PostgreSQL server for the test session: initdb in a temporary directory, its own port.

The server itself is appliance/cluster/postgres.py's `LocalPostgres` (the one `scripts/cluster`
runs); Debian's postgresql-15 (scripts/test installs it) gives the binaries. One server per
pytest-xdist worker (a session fixture in each worker process), and one fresh database per test
(`PostgresServer.new_database`), so no two tests share a row. As root it runs as the ``postgres``
user, in a directory outside pytest's root-only tmp tree.
"""
from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from appliance.store import databases
from appliance.cluster.postgres import BIN, SUPERUSER, LocalPostgres
from tests.peers.engine import PERSISTENT_PIDS, free_port
from tests.peers.process import stop_group

__all__ = ["BACKENDS", "BIN", "SUPERUSER", "PostgresServer", "sqlite_only"]

# The store fixtures' backends (tests/unit/conftest.py: ``store_target`` and ``store``).
BACKENDS = ("sqlite", "postgresql")
# A store test about SQLite itself (its file, WAL, a full disk under it) runs on SQLite only.
sqlite_only = pytest.mark.parametrize("store_target", ["sqlite"], indirect=True)
# fsync off: the tests never pull the plug on this server, and a database per test is created in a
# few ms instead of a few hundred. The store's own commit settings still run.
TEST_SETTINGS = {"fsync": "off", "full_page_writes": "off"}


class PostgresServer(LocalPostgres):
    """One postgres process on 127.0.0.1:<free port>, in a temporary directory of its own."""

    def __init__(self) -> None:
        super().__init__(Path(tempfile.mkdtemp(prefix="plateau-pg-")), free_port(also_tcp=True),
                         settings=TEST_SETTINGS)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """initdb (the first time) and start the server; return once it accepts connections."""
        self.prepare()
        self.proc = self.launch()
        PERSISTENT_PIDS.add(self.proc.pid)

    def new_database(self) -> str:
        """A fresh, empty database of its own; its URL."""
        return self.create_database(f"t_{secrets.token_hex(6)}")

    def drop_database(self, url: str) -> None:
        databases.drop_database(self.url(), url.rsplit("/", 1)[1])

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        self.halt()
        shutil.rmtree(self.root, ignore_errors=True)

    def halt(self) -> None:
        """Stop the server (fast shutdown: sessions are ended), keeping its data for `start`."""
        if self.proc is not None:
            super().stop()
            stop_group(self.proc)  # pg_ctl has stopped it; this reaps it (and ends it if not)
            PERSISTENT_PIDS.discard(self.proc.pid)
            self.proc = None
