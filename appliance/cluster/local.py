"""A whole site on one machine: `scripts/cluster up N` / `scripts/cluster down` (README, "A cluster on one machine").

``up`` starts, each in a session of its own so that they outlive it: a PostgreSQL server (initdb
in DIR/pg), N engines on 127.0.0.11, 127.0.0.12, ... (SIP port 5060 each, their own RTP range,
node names node1.., all on that database, recordings and voicemail in DIR/shared), one web UI per
node on that node's address, and Kamailio in front on 127.0.0.1:5060. It seeds the demo
configuration once, prints its passwords like `plateau run`, then one line of JSON saying where
everything is. It records every process (pid and start time, so a recycled pid is never hit) in
DIR/cluster.json; ``down`` stops them, in the reverse order, and is idempotent.

Nothing is installed here: what is missing is named, with the package that brings it.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from appliance.api.client import ControlApiClient
from appliance.api.facade import ApiError, ApiUnavailable
from appliance.cluster import front_door
from appliance.cluster.kamailio import KamailioError
from appliance.cluster.postgres import LocalPostgres, PostgresUnavailable
from appliance.store.db import Store
from appliance.system.process_group import process_table
from appliance.store.demo import DEMO_FLOW_FILE, notice, seed_demo

STATE_FILE = "cluster.json"
DATABASE = "plateau"
START_TIMEOUT = 60.0  # seconds for one engine or web UI to answer (a loaded 2-core box starts slowly)


class ClusterError(RuntimeError):
    """The cluster cannot be started as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Layout:
    """Where every part of the cluster listens, from the command line."""

    data_dir: Path
    nodes: int
    sip_ip: str = "127.0.0.1"
    sip_port: int = 5060
    base_ip: str = "127.0.0.11"
    engine_port: int = 5060
    pg_port: int = 5433  # not 5432: Debian's postgresql-15 starts its own cluster there when installed
    rtp_base: int = 20000
    rtp_span: int = 1000
    api_base_port: int = 5080  # node k's control API on 127.0.0.1:api_base_port+k (0: any free port)
    web_port: int = 8080

    def node_name(self, k: int) -> str:
        return f"node{k}"

    def node_ip(self, k: int) -> str:
        return str(ipaddress.IPv4Address(self.base_ip) + (k - 1))

    def rtp_range(self, k: int) -> tuple[int, int]:
        low = self.rtp_base + (k - 1) * self.rtp_span
        return low, low + self.rtp_span - 1

    def api_port(self, k: int) -> int:
        return self.api_base_port + k if self.api_base_port else 0

    def node_dir(self, k: int) -> Path:
        return self.data_dir / self.node_name(k)

    @property
    def shared_dir(self) -> Path:
        return self.data_dir / "shared"

    def check(self) -> None:
        """Refuse a layout whose addresses or ports cannot work, before anything starts."""
        if not 1 <= self.nodes <= 50:
            raise ClusterError(f"N must be 1 to 50 engines, not {self.nodes}")
        last = ipaddress.IPv4Address(self.base_ip) + (self.nodes - 1)
        if not (ipaddress.IPv4Address(self.base_ip).is_loopback and last.is_loopback):
            raise ClusterError(f"--base-ip {self.base_ip}: the engines need loopback addresses (127.x.y.z)"
                               " on this machine")
        if self.rtp_span < 100 or self.rtp_span % 2:
            raise ClusterError(f"--rtp-span {self.rtp_span}: need an even number of ports, at least 100")
        if self.rtp_base < 1024 or self.rtp_range(self.nodes)[1] > 65535:
            raise ClusterError(f"RTP ports {self.rtp_base}-{self.rtp_range(self.nodes)[1]} do not fit in 1024-65535")


@dataclass
class Started:
    """One process `up` started: enough for `down` to find it again, and only it."""

    what: str
    pid: int
    start_ticks: int  # /proc/PID/stat field 22: a pid the kernel gave to another process since differs


@dataclass
class ClusterState:
    """DIR/cluster.json: what `up` started, and the summary it printed."""

    processes: list[Started] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    def save(self, data_dir: Path) -> None:
        path = data_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"processes": [asdict(p) for p in self.processes],
                                   "summary": self.summary}, indent=1))
        tmp.replace(path)

    @classmethod
    def load(cls, data_dir: Path) -> ClusterState | None:
        path = data_dir / STATE_FILE
        try:
            raw = json.loads(path.read_text())
            return cls([Started(**p) for p in raw["processes"]], raw["summary"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise ClusterError(f"{path} is damaged ({exc}): stop its processes by hand, then delete it") from None


def _start_ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[19])  # field 22 of the whole line; fields[0] here is field 3 (state)


def _alive(proc: Started) -> bool:
    return _start_ticks(proc.pid) == proc.start_ticks


def _spawn(argv: Sequence[str], log: Path, what: str) -> tuple[subprocess.Popen[bytes], Started]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    return proc, Started(what, proc.pid, _start_ticks(proc.pid) or 0)


def _wait(ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not ready():
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-1500:]
            raise ClusterError(f"{what} exited with {proc.returncode} (log {log}):\n{tail}")
        if time.monotonic() > deadline:
            raise ClusterError(f"{what} not ready in {START_TIMEOUT:g} s (log {log})")
        time.sleep(0.1)


def _port_free(ip: str, port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            if kind == socket.SOCK_STREAM:
                # as the servers do: a port whose last connections linger in TIME_WAIT is free
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((ip, port))
            except OSError:
                return False
    return True


def _engine_ready(node_dir: Path) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            ControlApiClient.from_data_dir(node_dir, timeout=2.0).status()
        except (OSError, ValueError, KeyError, ApiError, ApiUnavailable):
            return False  # api.json not written yet, half-written, or the API not listening yet
        return True
    return ready


def _web_ready(url: str) -> Callable[[], bool]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def ready() -> bool:
        try:
            with opener.open(url + "login", timeout=2.0):
                return True
        except urllib.error.HTTPError:
            return True  # it answers: up
        except OSError:
            return False
    return ready


def _plateau(*args: str) -> list[str]:
    return [sys.executable, "-m", "appliance.cli", *args]


class LocalCluster:
    """`up` and `down` over one data directory."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.pg = LocalPostgres(layout.data_dir / "pg", layout.pg_port)
        self.state = ClusterState()

    def up(self, out: Callable[[str], None]) -> dict[str, Any]:
        lay = self.layout
        lay.check()
        lay.data_dir.mkdir(parents=True, exist_ok=True)
        previous = ClusterState.load(lay.data_dir)
        if previous is not None and any(_alive(p) for p in previous.processes):
            raise ClusterError(f"a cluster is already up in {lay.data_dir}: `scripts/cluster down"
                               f" --data-dir {lay.data_dir}` first")
        self._check_free()
        try:
            return self._start_all(out)
        except BaseException:
            self.down()
            raise

    def _check_free(self) -> None:
        lay = self.layout
        wanted = [("PostgreSQL", "127.0.0.1", lay.pg_port), ("Kamailio", lay.sip_ip, lay.sip_port)]
        for k in range(1, lay.nodes + 1):
            wanted += [(f"{lay.node_name(k)} SIP", lay.node_ip(k), lay.engine_port),
                       (f"{lay.node_name(k)} web UI", lay.node_ip(k), lay.web_port)]
            if lay.api_port(k):
                wanted.append((f"{lay.node_name(k)} control API", "127.0.0.1", lay.api_port(k)))
        taken = [f"{what} {ip}:{port}" for what, ip, port in wanted if not _port_free(ip, port)]
        if taken:
            raise ClusterError(f"in use already: {', '.join(taken)} (another cluster, `scripts/run`, or Debian's"
                               " own service?): stop it or choose other ports (see --help)")

    def _record(self, started: Started) -> None:
        self.state.processes.append(started)
        self.state.save(self.layout.data_dir)

    def _start_all(self, out: Callable[[str], None]) -> dict[str, Any]:
        lay = self.layout
        self.pg.prepare()
        # As root the launched process is runuser and the server its child: one process group either way.
        server = self.pg.launch()
        self._record(Started("postgres", server.pid, _start_ticks(server.pid) or 0))
        db = self.pg.create_database(DATABASE)
        with Store(db) as store:  # the migrations run once, here, before any engine opens the site
            created = seed_demo(store)
        lay.shared_dir.mkdir(parents=True, exist_ok=True)
        engines: list[dict[str, Any]] = []
        for k in range(1, lay.nodes + 1):
            engines.append(self._start_engine(k, db))
        try:
            door = front_door.start(lay.data_dir / "kamailio", (lay.sip_ip, lay.sip_port),
                                    [(lay.node_ip(k), lay.engine_port) for k in range(1, lay.nodes + 1)])
        except KamailioError as exc:
            raise ClusterError(f"the front door did not start: {exc}") from None
        self._record(Started("kamailio", door, _start_ticks(door) or 0))
        admin_notice = []
        for k, engine in enumerate(engines, start=1):
            admin_notice += self._start_web(k, db, engine)
        sip = f"{lay.sip_ip}:{lay.sip_port}"
        if created:
            for line in notice(created, sip):
                out(line)
        for line in admin_notice:
            out(line)
        self.state.summary = {"sip": sip, "db": db,
                              "engines": engines, "web": [e["web"] for e in engines]}
        self.state.save(lay.data_dir)
        return self.state.summary

    def _start_engine(self, k: int, db: str) -> dict[str, Any]:
        lay = self.layout
        name, node_dir = lay.node_name(k), lay.node_dir(k)
        flows = node_dir / "flows"
        flows.mkdir(parents=True, exist_ok=True)
        flow = flows / DEMO_FLOW_FILE.name
        if not flow.exists():  # IVR flows are files, per node; one edited since the first `up` stays
            shutil.copyfile(DEMO_FLOW_FILE, flow)
        (node_dir / "api.json").unlink(missing_ok=True)
        low, high = lay.rtp_range(k)
        log = node_dir / "engine.log"
        argv = _plateau("run", "--data-dir", str(node_dir), "--db", db, "--shared-dir", str(lay.shared_dir),
                        "--node", name, "--sip-ip", lay.node_ip(k), "--sip-port", str(lay.engine_port),
                        "--api-port", str(lay.api_port(k)), "--rtp-ports", f"{low}-{high}", "--no-demo",
                        *front_door.engine_args((lay.sip_ip, lay.sip_port)))
        proc, started = _spawn(argv, log, name)
        self._record(started)
        _wait(_engine_ready(node_dir), proc, f"engine {name}", log)
        api = ControlApiClient.from_data_dir(node_dir).base_url
        return {"name": name, "pid": proc.pid, "sip": f"{lay.node_ip(k)}:{lay.engine_port}", "api": api,
                "rtp": f"{low}-{high}", "web": f"http://{lay.node_ip(k)}:{lay.web_port}/"}

    def _start_web(self, k: int, db: str, engine: dict[str, Any]) -> list[str]:
        """Start node k's web UI and wait for it (one at a time: the first creates the site's admin);
        the lines of its log that say the admin's one-time password."""
        lay = self.layout
        node_dir = lay.node_dir(k)
        log = node_dir / "web.log"
        mark = log.stat().st_size if log.exists() else 0
        argv = _plateau("web", "--data-dir", str(node_dir), "--db", db, "--shared-dir", str(lay.shared_dir),
                        "--bind", f"{lay.node_ip(k)}:{lay.web_port}")
        proc, started = _spawn(argv, log, f"{lay.node_name(k)}-web")
        self._record(started)
        _wait(_web_ready(engine["web"]), proc, f"web UI of {lay.node_name(k)}", log)
        with open(log, "rb") as f:
            f.seek(mark)
            fresh = f.read().decode(errors="replace").splitlines()
        return [f"{line} (web UI at {engine['web']}, any node)" for line in fresh if "one-time password" in line]

    def down(self) -> list[str]:
        """Stop every process `up` recorded, newest first; what was stopped. Idempotent."""
        state = ClusterState.load(self.layout.data_dir)
        if state is None:
            return []
        stopped = []
        for proc in reversed(state.processes):
            if not _alive(proc):
                continue
            if proc.what == "postgres":
                self.pg.stop()  # a fast shutdown that ends the sessions and writes a checkpoint
            _stop_group(proc)
            stopped.append(proc.what)
        (self.layout.data_dir / STATE_FILE).unlink(missing_ok=True)
        return stopped


def _stop_group(proc: Started, grace: float = 10.0) -> None:
    """SIGTERM the process group `proc` leads, SIGKILL what is left after `grace` s."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _group_alive(proc.pid):
                return
            time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # killpg(0) also succeeds for zombies: a member counts only while it is not one.
    return any(int(fields[2]) == pgid and fields[0] != "Z" for fields in process_table().values())


def _parser() -> argparse.ArgumentParser:
    d = Layout(Path("data/cluster"), 1)
    p = argparse.ArgumentParser(prog="scripts/cluster", description="A Plateau site on this machine:"
                                " PostgreSQL, Kamailio and N engines, each with its control API and web UI.")
    sub = p.add_subparsers(dest="command", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter
    up = sub.add_parser("up", help="start PostgreSQL, N engines, their web UIs and Kamailio", formatter_class=fmt)
    up.add_argument("nodes", type=int, metavar="N", help="how many engines")
    down = sub.add_parser("down", help="stop everything `up` started in the data directory", formatter_class=fmt)
    for sp in (up, down):
        sp.add_argument("--data-dir", type=Path, default=d.data_dir, help="where everything lives")
        sp.add_argument("--pg-port", type=int, default=d.pg_port, help="PostgreSQL on 127.0.0.1")
    up.add_argument("--sip-ip", default=d.sip_ip, help="Kamailio's address, the site's one SIP address")
    up.add_argument("--sip-port", type=int, default=d.sip_port, help="Kamailio's port")
    up.add_argument("--base-ip", default=d.base_ip, help="engine 1's address; engine k's is k-1 above it")
    up.add_argument("--engine-port", type=int, default=d.engine_port, help="every engine's SIP port")
    up.add_argument("--rtp-base", type=int, default=d.rtp_base, help="engine 1's first RTP port")
    up.add_argument("--rtp-span", type=int, default=d.rtp_span, help="RTP ports per engine")
    up.add_argument("--api-base-port", type=int, default=d.api_base_port,
                    help="engine k's control API on 127.0.0.1:BASE+k; 0: any free port")
    up.add_argument("--web-port", type=int, default=d.web_port, help="each node's web UI, on its own address")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "down":
        cluster = LocalCluster(Layout(args.data_dir, 1, pg_port=args.pg_port))
        stopped = cluster.down()
        print(f"stopped: {', '.join(stopped)}" if stopped else f"nothing running in {args.data_dir}")
        return 0
    layout = Layout(args.data_dir.resolve(), args.nodes, sip_ip=args.sip_ip, sip_port=args.sip_port,
                    base_ip=args.base_ip, engine_port=args.engine_port, pg_port=args.pg_port,
                    rtp_base=args.rtp_base, rtp_span=args.rtp_span, api_base_port=args.api_base_port,
                    web_port=args.web_port)
    missing = front_door.missing()
    if missing:
        print(f"scripts/cluster: {missing}", file=sys.stderr)
        return 1
    try:
        summary = LocalCluster(layout).up(lambda line: print(line, flush=True))
    except (ClusterError, PostgresUnavailable) as exc:
        print(f"scripts/cluster: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
