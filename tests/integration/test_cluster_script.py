"""`scripts/cluster up 2` / `down`: a whole site on this machine, driven as the README says.

The real script on free ports and addresses of its own (a loopback block 127.a.b.11.. for the
engines, free ports for PostgreSQL, the front door and the web UIs), real pjsua2 phones registered
and calling through its Kamailio, then `down`, after which no process of that cluster is left.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers.engine import REPO_ROOT, free_port, free_port_range
from tests.peers.pjsua import PjPhone
from tests.peers.polling import wait_until

SCRIPT = REPO_ROOT / "scripts" / "cluster"


@pytest.fixture
def cluster_dir() -> Iterator[Path]:
    # Not tmp_path: as root the database runs as the postgres user, who cannot enter pytest's
    # root-only tmp tree (the same reason as tests/peers/postgres.py).
    path = Path(tempfile.mkdtemp(prefix="plateau-cluster-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _loopback_block() -> str:
    """A base address 127.a.b.11 at random: the engines' addresses (.11, .12), which no other test uses."""
    return f"127.{random.randrange(100, 250)}.{random.randrange(1, 250)}.11"


def _cluster(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=240, check=False)


def _processes_of(data_dir: Path, groups: set[int]) -> dict[int, str]:
    """Live processes whose command line names the cluster's directory or whose group `up` started."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if stat[0] != "Z" and (str(data_dir) in cmd or int(stat[2]) in groups):
            found[int(entry)] = cmd
    return found


def test_cluster_up_2_serves_a_call_across_its_engines_and_down_leaves_no_process(cluster_dir: Path) -> None:
    base = _loopback_block()
    engine_port = free_port(host=base)
    sip_port, pg_port = free_port(), free_port(also_tcp=True)
    rtp_low, _ = free_port_range(400)
    web_port = free_port(host=base)
    args = ["--data-dir", str(cluster_dir), "--base-ip", base, "--engine-port", str(engine_port),
            "--sip-port", str(sip_port), "--pg-port", str(pg_port), "--rtp-base", str(rtp_low),
            "--rtp-span", "200", "--api-base-port", "0", "--web-port", str(web_port)]
    groups: set[int] = set()
    try:
        up = _cluster("up", "2", *args)
        assert up.returncode == 0, up.stderr
        summary: dict[str, Any] = json.loads(up.stdout.strip().splitlines()[-1])
        state = json.loads((cluster_dir / "cluster.json").read_text())
        groups = {p["pid"] for p in state["processes"]}
        assert summary["sip"] == f"127.0.0.1:{sip_port}"
        assert [e["name"] for e in summary["engines"]] == ["node1", "node2"]
        node2_ip = base.rsplit(".", 1)[0] + ".12"
        assert [e["sip"] for e in summary["engines"]] == [f"{base}:{engine_port}", f"{node2_ip}:{engine_port}"]
        assert summary["db"].startswith(f"postgresql://plateau@127.0.0.1:{pg_port}/")
        assert summary["web"] == [f"http://{base}:{web_port}/", f"http://{node2_ip}:{web_port}/"]
        passwords = dict(re.findall(r"extension (\d+)\s+password (\S+)", up.stdout))
        assert sorted(passwords) == [str(n) for n in range(1001, 1011)]
        assert "one-time password" in up.stdout  # the web admin's, printed once
        # A second `up` on the same directory refuses and starts nothing.
        again = _cluster("up", "2", *args)
        assert again.returncode == 1 and "already up" in again.stderr
        _call_through_the_front_door(summary, passwords)
    finally:
        down = _cluster("down", "--data-dir", str(cluster_dir))
    assert down.returncode == 0, down.stderr
    assert "stopped:" in down.stdout
    assert wait_until(lambda: not _processes_of(cluster_dir, groups), timeout=10.0,
                      what="no process of the cluster left")
    again = _cluster("down", "--data-dir", str(cluster_dir))
    assert again.returncode == 0 and "nothing running" in again.stdout


def _call_through_the_front_door(summary: dict[str, Any], passwords: dict[str, str]) -> None:
    """1001 calls 1002, both registered through Kamailio; audio both ways, and the call is
    anchored on an engine of the cluster."""
    host, port = summary["sip"].rsplit(":", 1)
    with PjPhone("a") as a, PjPhone("b") as b:
        a.register("1001", passwords["1001"], host, int(port))
        b.register("1002", passwords["1002"], host, int(port))
        ca = a.call(f"sip:1002@{host}:{port}")
        cb = b.wait_incoming(timeout=10.0)
        b.answer(cb)
        a.wait_state(ca, "CONFIRMED", timeout=10.0)
        a.wait_rx_audio(ca, 1.0)
        b.wait_rx_audio(cb, 1.0)
        a.hangup(ca)
        b.wait_state(cb, "DISCONNECTED", timeout=10.0)


@pytest.mark.parametrize(("args", "says"), [
    (["0"], "N must be 1 to 50"),
    (["2", "--base-ip", "10.1.2.3"], "loopback"),
    (["2", "--rtp-base", "65000"], "do not fit"),
    (["2", "--rtp-span", "99"], "--rtp-span 99"),
])
def test_cluster_up_refuses_a_bad_layout_by_name_and_starts_nothing(cluster_dir: Path, args: list[str],
                                                                    says: str) -> None:
    res = _cluster("up", *args, "--data-dir", str(cluster_dir))
    assert res.returncode == 1
    assert says in res.stderr and "Traceback" not in res.stderr
    assert not (cluster_dir / "cluster.json").exists() and not (cluster_dir / "pg").exists()


def test_cluster_up_names_a_port_in_use_and_starts_nothing(cluster_dir: Path) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        res = _cluster("up", "1", "--data-dir", str(cluster_dir), "--sip-port", str(port),
                       "--base-ip", _loopback_block())
    assert res.returncode == 1
    assert f"Kamailio 127.0.0.1:{port}" in res.stderr and "in use already" in res.stderr
    assert not (cluster_dir / "pg").exists()
