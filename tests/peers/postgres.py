"""A private PostgreSQL server for the test session: initdb in a temporary directory, its own port.

Debian's postgresql-15 (scripts/test installs it) gives the binaries; its own cluster is never
started. One server per pytest-xdist worker (a session fixture in each worker process), and one
fresh database per test (`PostgresServer.new_database`), so no two tests share a row.

initdb and postgres refuse to run as root: as root (CI), both run as the ``postgres`` system user
through ``runuser``, in a directory that user owns outside pytest's root-only tmp tree.

Two-box HA (tests/integration/test_ha_failover.py) runs one server in each box's network
namespace: `netns`, a fixed port, the listen addresses and pg_hba lines of the box's
configuration, and for the standby a data directory made by `basebackup` instead of initdb.
"""
from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.peers.engine import PERSISTENT_PIDS, free_port
from tests.peers.netns import Netns
from tests.peers.polling import wait_until
from tests.peers.process import stop_group

BIN = Path("/usr/lib/postgresql/15/bin")
# The store fixtures' backends (tests/unit/conftest.py: ``store_target`` and ``store``).
BACKENDS = ("sqlite", "postgresql")
# A store test about SQLite itself (its file, WAL, a full disk under it) runs on SQLite only.
sqlite_only = pytest.mark.parametrize("store_target", ["sqlite"], indirect=True)
SUPERUSER = "plateau"


def _as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


class PostgresServer:
    """One postgres process on 127.0.0.1:<free port> and a unix socket in its own directory."""

    def __init__(self, netns: Netns | None = None, port: int | None = None, listen: str | None = "127.0.0.1",
                 include: str | None = None, hba: list[str] | None = None) -> None:
        self.netns = netns
        self.listen = listen  # None: the include file's listen_addresses
        self.include = include  # postgresql.conf lines appended after initdb or basebackup
        self.hba = list(hba or [])  # pg_hba.conf lines appended likewise
        self.root = Path(tempfile.mkdtemp(prefix="plateau-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "run"
        self.socket_dir.mkdir()
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            for path in (self.root, self.socket_dir):
                os.chown(path, user.pw_uid, user.pw_gid)
        self.port = port if port is not None else free_port(also_tcp=True)
        self.proc: subprocess.Popen[bytes] | None = None

    def _argv(self, argv: list[str]) -> list[str]:
        argv = _as_server_user(argv)
        return self.netns.argv(argv) if self.netns is not None else argv

    def start(self) -> None:
        """initdb (the first time) and start the server; return once it accepts connections."""
        if not self.data.exists():
            self._initdb()
        self._launch()

    def _initdb(self) -> None:
        subprocess.run(
            self._argv([str(BIN / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                        "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"]),
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120,
        )
        self._configure()

    def basebackup(self, argv: list[str]) -> None:
        """Make the data directory a standby's with `argv` (a pg_basebackup -R of the primary)."""
        res = subprocess.run(self._argv(argv), check=False, capture_output=True, timeout=120)
        if res.returncode != 0:
            raise RuntimeError(f"pg_basebackup failed: {res.stderr.decode(errors='replace')}")
        self._configure()

    def _configure(self) -> None:
        # Appended as the server user would, so the files keep their owner.
        for name, lines in (("postgresql.conf", self.include), ("pg_hba.conf", "\n".join(self.hba))):
            if lines:
                with open(self.data / name, "a") as f:
                    f.write("\n" + lines + "\n")

    def _launch(self) -> None:
        # fsync off: the tests never pull the plug on this server, and a database per test is
        # created in a few ms instead of a few hundred. The store's own commit settings still run.
        self.proc = subprocess.Popen(
            self._argv([str(BIN / "postgres"), "-D", str(self.data), "-p", str(self.port),
                        *(["-h", self.listen] if self.listen is not None else []),
                        "-k", str(self.socket_dir), "-c", "fsync=off",
                        "-c", "full_page_writes=off", "-c", "max_connections=200"]),
            stdout=subprocess.DEVNULL, stderr=open(self.root / "server.log", "ab"),  # noqa: SIM115
            start_new_session=True,
        )
        PERSISTENT_PIDS.add(self.proc.pid)
        wait_until(self._ready, timeout=60.0, what=f"postgres on port {self.port} accepting connections")

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            log = (self.root / "server.log").read_text(errors="replace")
            raise RuntimeError(f"postgres exited with {self.proc.returncode}: {log[-2000:]}")
        probe = subprocess.run(self._argv([str(BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]),
                               check=False, timeout=10)
        return probe.returncode == 0

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database of its own; its URL."""
        import psycopg

        name = f"t_{secrets.token_hex(6)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # type: ignore[arg-type]

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        self.halt()
        shutil.rmtree(self.root, ignore_errors=True)

    def halt(self) -> None:
        """Stop the server (fast shutdown: sessions are ended), keeping its data for `start`."""
        if self.proc is not None:
            subprocess.run(self._argv([str(BIN / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast",
                                       "-w", "-t", "30"]),
                           check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
            stop_group(self.proc)  # pg_ctl has stopped it; this reaps it (and ends it if not)
            PERSISTENT_PIDS.discard(self.proc.pid)
            self.proc = None
