"""A PostgreSQL server of our own: initdb in a directory, its own port, started and stopped here.

Debian's postgresql-15 gives the binaries; its own cluster is never used. `scripts/cluster` runs
the site's database this way, and the test suite (tests/peers/postgres.py) one per worker.

initdb and postgres refuse to run as root: as root, both run as the ``postgres`` system user
through ``runuser``, in a directory that user owns (and can reach: every parent must let it in).
"""
from __future__ import annotations

import os
import pwd
import subprocess
import time
from pathlib import Path
from typing import IO

from appliance.store import databases

BIN = Path("/usr/lib/postgresql/15/bin")
DEBIAN_PACKAGE = "postgresql-15"
SUPERUSER = "plateau"


class PostgresUnavailable(RuntimeError):
    """The server cannot be set up or started here; the message says why and what to do."""


def _as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def missing_binaries() -> list[str]:
    """The PostgreSQL programs this module runs that are not installed."""
    return [name for name in ("initdb", "postgres", "pg_ctl", "pg_isready") if not (BIN / name).exists()]


class LocalPostgres:
    """One postgres server: data in ROOT/data, its unix socket in ROOT/run, its log in ROOT/server.log.

    ``settings`` are extra ``-c name=value`` server settings (the tests turn fsync off); ``listen`` is
    the TCP address (None: the configuration's ``listen_addresses``). A subclass that runs the
    server elsewhere (the HA test's network namespaces) overrides `where`.
    """

    def __init__(self, root: Path, port: int, *, settings: dict[str, str] | None = None,
                 listen: str | None = "127.0.0.1") -> None:
        self.root = Path(root)
        self.listen = listen
        self.data = self.root / "data"
        self.socket_dir = self.root / "run"
        self.log_path = self.root / "server.log"
        self.port = port
        self.settings = {"max_connections": "200", **(settings or {})}

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def where(self, argv: list[str]) -> list[str]:
        """``argv`` as run where the server runs (here: this host as it is)."""
        return argv

    def as_server(self, argv: list[str]) -> list[str]:
        """``argv`` run as the server's user, where the server runs."""
        return self.where(_as_server_user(argv))

    def prepare(self) -> None:
        """Create ROOT and its socket directory, owned by the server's user; initdb the first time."""
        self.prepare_root()
        if not (self.data / "PG_VERSION").exists():
            self._initdb()

    def prepare_root(self) -> None:
        """Create ROOT and its socket directory, owned by the server's user (who must reach them)."""
        missing = missing_binaries()
        if missing:
            raise PostgresUnavailable(f"PostgreSQL 15 is not installed ({', '.join(missing)} missing in {BIN}):"
                                      f" install the Debian package {DEBIAN_PACKAGE}")
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            for path in (self.root, self.socket_dir):
                os.chown(path, user.pw_uid, user.pw_gid)
            reach = subprocess.run(self.as_server(["test", "-w", str(self.root)]), check=False)
            if reach.returncode != 0:
                raise PostgresUnavailable(f"the postgres user cannot write {self.root} (a parent directory"
                                          " keeps it out): choose a data directory it can reach")

    def _initdb(self) -> None:
        res = subprocess.run(
            self.as_server([str(BIN / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                            "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"]),
            check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120,
        )
        if res.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {res.stderr.decode(errors='replace').strip()}")

    def launch(self) -> subprocess.Popen[bytes]:
        """Start postgres in its own session (it outlives its starter); return once it accepts connections."""
        args = [str(BIN / "postgres"), "-D", str(self.data), "-p", str(self.port),
                *(["-h", self.listen] if self.listen is not None else []), "-k", str(self.socket_dir)]
        for name, value in self.settings.items():
            args += ["-c", f"{name}={value}"]
        log: IO[bytes] = open(self.log_path, "ab")  # noqa: SIM115 (the server writes it after we return)
        with log:
            proc = subprocess.Popen(self.as_server(args), stdout=subprocess.DEVNULL, stderr=log,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60.0
        while not self.ready():
            if proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise PostgresUnavailable(f"postgres exited with {proc.returncode}: {tail}")
            if time.monotonic() > deadline:
                self.stop()
                raise PostgresUnavailable(f"postgres on port {self.port} not accepting connections in 60 s")
            time.sleep(0.1)
        return proc

    def ready(self) -> bool:
        probe = subprocess.run(self.where([str(BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]),
                               check=False, timeout=10)
        return probe.returncode == 0

    def create_database(self, name: str) -> str:
        """Create database NAME unless it exists; its URL."""
        databases.create_database(self.url(), name)
        return self.url(name)

    def stop(self) -> None:
        """Fast shutdown (sessions are ended) through pg_ctl, which finds the server by its data
        directory, so a process other than the starter may stop it; idempotent."""
        if not (self.data / "postmaster.pid").exists():
            return
        subprocess.run(self.as_server([str(BIN / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast",
                                       "-w", "-t", "30"]),
                       check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
