"""A private PostgreSQL server for the test session: initdb in a temporary directory, its own port.

The server itself is appliance/cluster/postgres.py's `LocalPostgres` (the one `scripts/cluster`
runs); Debian's postgresql-15 (scripts/test installs it) gives the binaries. One server per
pytest-xdist worker (a session fixture in each worker process), and one fresh database per test
(`PostgresServer.new_database`), so no two tests share a row. As root it runs as the ``postgres``
user, in a directory outside pytest's root-only tmp tree.

Two-box HA (tests/integration/test_ha_failover.py) runs one server in each box's network
namespace: `netns`, a fixed port, the listen addresses and pg_hba lines of the box's
configuration, and for the standby a data directory made by `basebackup` instead of initdb.
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
from tests.peers.netns import Netns
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
    """One postgres process on 127.0.0.1:<free port> (or in a network namespace), in a temporary directory."""

    def __init__(self, netns: Netns | None = None, port: int | None = None, listen: str | None = "127.0.0.1",
                 include: str | None = None, hba: list[str] | None = None) -> None:
        super().__init__(Path(tempfile.mkdtemp(prefix="plateau-pg-")),
                         port if port is not None else free_port(also_tcp=True),
                         settings=TEST_SETTINGS, listen=listen)
        self.netns = netns
        self.include = include  # postgresql.conf lines appended after initdb or basebackup
        self.hba = list(hba or [])  # pg_hba.conf lines appended likewise
        self.proc: subprocess.Popen[bytes] | None = None

    def where(self, argv: list[str]) -> list[str]:
        return self.netns.argv(argv) if self.netns is not None else argv

    def start(self) -> None:
        """initdb (the first time) and start the server; return once it accepts connections."""
        self.prepare()
        self.proc = self.launch()
        PERSISTENT_PIDS.add(self.proc.pid)

    def _initdb(self) -> None:
        super()._initdb()
        self._configure()

    def basebackup(self, argv: list[str]) -> None:
        """Make the data directory a standby's with `argv` (a pg_basebackup -R of the primary)."""
        self.prepare_root()
        res = subprocess.run(self.as_server(argv), check=False, capture_output=True, timeout=120)
        if res.returncode != 0:
            raise RuntimeError(f"pg_basebackup failed: {res.stderr.decode(errors='replace')}")
        self._configure()

    def _configure(self) -> None:
        # Appended as the server user would, so the files keep their owner.
        for name, lines in (("postgresql.conf", self.include), ("pg_hba.conf", "\n".join(self.hba))):
            if lines:
                with open(self.data / name, "a") as f:
                    f.write("\n" + lines + "\n")

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
