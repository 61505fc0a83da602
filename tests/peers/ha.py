"""Two-box HA on one machine: each box a network namespace on a `Lan`, with its PostgreSQL,
keepalived and (while it is MASTER) an engine, all configured by appliance/cluster/ha.py.

`HaBox.start_keepalived` runs the real keepalived with the box's generated keepalived.conf and
notify script; the notify script starts the engine (`plateau run` inside the namespace, on the
virtual IP, port 5060) exactly as it runs systemctl on a real box. `HaBox.engine` is a
`tests.peers.engine.Engine` for that engine: its config import and command line, and its control
API reached from inside the namespace.
"""
from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from appliance.cluster import ha
from appliance.store.replication import in_recovery, prepare_primary
from tests.peers.engine import REPO_ROOT, Engine, EngineError
from tests.peers.netns import Netns, write_wrapper
from tests.peers.polling import wait_until
from tests.peers.postgres import BIN, SUPERUSER, PostgresServer

SIP_PORT = 5060  # each box owns its ports, as a real box does
PG_PORT = 5432


class BoxEngine(Engine):
    """The engine of one box: started by the box's notify script, reached inside its namespace."""

    def __init__(self, box: HaBox, config: dict[str, Any]) -> None:
        python = write_wrapper(box.work / "python-in-box", box.ns, sys.executable)
        super().__init__(box.work / "engine", config=config, python=str(python),
                         db=ha.engine_db_url(box.pair, box.name, box.secrets), extra_args=["--node", box.name])
        self.box = box
        self.sip_ip = str(box.pair.vip.ip)
        self.sip_port = SIP_PORT
        self.rtp_ports = (20000, 20999)

    def start_line(self) -> str:
        """The notify script's start command: the engine in the background, its pid in a file."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "api.json").unlink(missing_ok=True)
        argv = " ".join(shlex.quote(a) for a in self.command())
        return (f"cd {shlex.quote(str(REPO_ROOT))} && setsid {argv} < /dev/null"
                f" >> {shlex.quote(str(self.stdout_path))} 2>> {shlex.quote(str(self.stderr_path))} &"
                f" echo $! > {shlex.quote(str(self.pid_file))}")

    def stop_line(self) -> str:
        pid = shlex.quote(str(self.pid_file))
        return f"if [ -f {pid} ]; then kill $(cat {pid}) 2>/dev/null; rm -f {pid}; fi"

    @property
    def pid_file(self) -> Path:
        return self.work_dir / "engine.pid"

    def running_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
        except (OSError, ValueError):
            return None
        return pid if Path(f"/proc/{pid}").exists() else None

    def attach(self, timeout: float = 30.0) -> BoxEngine:
        """Wait until the engine the notify script started answers GET /v1/status."""
        api_json = self.data_dir / "api.json"

        def up() -> bool:
            if not api_json.exists():
                return False
            try:
                info = json.loads(api_json.read_text())
                self.api_url, self.api_token = info["url"].rstrip("/"), info["token"]
                return self.api("GET", "/v1/status", timeout=1.0)[0] == 200
            except (ValueError, KeyError, OSError):
                return False
        try:
            wait_until(up, timeout=timeout, what=f"box {self.box.name}'s engine answering")
        except AssertionError as exc:
            raise EngineError(f"{exc}:\n{self.stderr_tail()}") from exc
        return self

    def api(self, method: str, path: str, body: Any = None, timeout: float = 5.0) -> tuple[int, Any]:
        with self.box.ns.entered():
            return super().api(method, path, body, timeout)


class HaBox:
    """One box of the pair: its namespace, PostgreSQL, keepalived and engine."""

    def __init__(self, pair: ha.HaPair, name: str, ns: Netns, work: Path, ha_secrets: ha.HaSecrets,
                 config: dict[str, Any]) -> None:
        self.pair, self.name, self.ns, self.secrets = pair, name, ns, ha_secrets
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.postgres = PostgresServer(netns=ns, port=PG_PORT, listen=None,
                                       include=ha.postgres_conf(pair, name), hba=ha.hba_lines(pair))
        self.engine = BoxEngine(self, config)
        self.notify_log = work / "notify.log"
        self.files = ha.write_box(pair, name, work / "ha", ha_secrets, ha.BoxCommands(
            pg_data=self.postgres.data, pg_bin=BIN, start_services=self.engine.start_line(),
            stop_services=self.engine.stop_line(), log_file=self.notify_log))
        self.keepalived: subprocess.Popen[bytes] | None = None

    def superuser_url(self, database: str | None = None) -> str:
        """The superuser on the box's loopback (trust): use it inside `ns.entered()`."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{PG_PORT}/{database or self.pair.database}"

    def start_primary(self) -> None:
        self.postgres.start()
        with self.ns.entered():
            prepare_primary(self.superuser_url("postgres"), database=self.pair.database,
                            db_user=self.pair.db_user, db_password=self.secrets.db_password,
                            replication_user=self.pair.replication_user,
                            replication_password=self.secrets.replication_password)

    def start_standby(self) -> None:
        self.postgres.basebackup(ha.basebackup_argv(self.pair, self.name, self.postgres.data, self.secrets, BIN))
        self.postgres.start()

    def start_keepalived(self) -> None:
        run = self.work / "run"
        run.mkdir(exist_ok=True)
        argv = ["keepalived", "--dont-fork", "--log-console", "--log-detail", "--vrrp",
                "-f", str(self.files.keepalived), "-p", str(run / "keepalived.pid"),
                "-r", str(run / "vrrp.pid"), "-c", str(run / "checkers.pid")]
        with open(self.work / "keepalived.log", "ab") as log:
            self.keepalived = subprocess.Popen(self.ns.argv(argv), stdout=log, stderr=log,
                                               stdin=subprocess.DEVNULL, start_new_session=True)

    def holds_vip(self) -> bool:
        return str(self.pair.vip.ip) in self.ns.addresses()

    def in_recovery(self) -> bool:
        with self.ns.entered():
            return in_recovery(self.superuser_url())

    def kill(self) -> None:
        """The box dies: keepalived, PostgreSQL, engine and media, all at once by SIGKILL."""
        self.ns.kill_all()
        if self.keepalived is not None:
            self.keepalived.wait(timeout=10)
        # What a reboot clears (/run): the engine's pid, which another process may get next.
        self.engine.pid_file.unlink(missing_ok=True)

    def rejoin(self) -> None:
        """The box comes back as the peer's standby: link up, its old database stopped and
        emptied, copied again from the peer (pg_basebackup -R), keepalived running."""
        subprocess.run(self.ns.argv(["ip", "link", "set", "eth0", "up"]), check=True, timeout=10)
        self.postgres.halt()
        shutil.rmtree(self.postgres.data)
        (self.engine.data_dir / "api.json").unlink(missing_ok=True)
        self.start_standby()
        if self.keepalived is None or self.keepalived.poll() is not None:
            self.start_keepalived()

    def unplug(self) -> None:
        """The box loses its link (eth0 down): everything in it goes on running, cut off."""
        subprocess.run(self.ns.argv(["ip", "link", "set", "eth0", "down"]), check=True, timeout=10)

    def stop(self) -> None:
        """Stop whatever still runs in the box; keeps the logs."""
        self.ns.kill_all()
        for proc in (self.keepalived, self.postgres.proc):
            if proc is not None:
                proc.wait(timeout=10)
        self.postgres.proc = None

    def logs(self) -> str:
        parts = []
        for path in (self.work / "keepalived.log", self.notify_log, self.engine.stderr_path,
                     self.postgres.root / "server.log"):
            try:
                parts.append(f"--- {path.name} ---\n{path.read_text(errors='replace')[-3000:]}")
            except OSError:
                continue
        return "\n".join(parts)
