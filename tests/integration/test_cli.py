"""The `plateau` command line against a real engine and data directory."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.peers.engine import REPO_ROOT, Engine


def plateau(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "appliance.cli", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)


def test_config_round_trip_status_and_reload(tmp_path: Path) -> None:
    eng = Engine(tmp_path / "engine")
    eng.start()
    try:
        data = str(eng.data_dir)
        exported = plateau("config", "export", "--data-dir", data)
        assert exported.returncode == 0, exported.stderr
        cfg = yaml.safe_load(exported.stdout)
        assert [e["number"] for e in cfg["extensions"]][:2] == ["1001", "1002"]
        cfg["extensions"][1]["dnd"] = True
        site = tmp_path / "site.yaml"
        site.write_text(yaml.safe_dump(cfg))
        imported = plateau("config", "import", str(site), "--data-dir", data)
        assert imported.returncode == 0, imported.stderr
        assert "running engine reloaded" in imported.stdout
        status = plateau("status", "--data-dir", data)
        assert status.returncode == 0 and "registrations 0" in status.stdout
    finally:
        eng.stop()


def test_bad_config_is_refused_whole_and_names_the_field(tmp_path: Path) -> None:
    eng = Engine(tmp_path / "engine")
    eng.import_config()
    data = str(eng.data_dir)
    before = plateau("config", "export", "--data-dir", data).stdout
    bad = yaml.safe_load(before)
    bad["extensions"][3]["number"] = "10a1"
    bad["extensions"].append({"number": "2001", "name": "New", "secret": "secret2001"})
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    res = plateau("config", "import", str(tmp_path / "bad.yaml"), "--data-dir", data)
    assert res.returncode == 2
    assert "extensions[3].number" in res.stderr and "nothing changed" in res.stderr
    assert plateau("config", "export", "--data-dir", data).stdout == before  # nothing half-applied


def test_status_without_an_engine_says_so(tmp_path: Path) -> None:
    res = plateau("status", "--data-dir", str(tmp_path))
    assert res.returncode == 1 and "engine not reachable" in res.stderr


def test_ivr_simulate_walks_the_demo_flow() -> None:
    res = plateau("ivr", "simulate", "appliance/ivr/examples/demo.yaml", "--digits", "1,2",
                  "--caller", "+33612345678", "--at", "2026-11-23T10:00")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("=> route queue:sales-en")
    closed = plateau("ivr", "simulate", "appliance/ivr/examples/demo.yaml", "--digits", "1,2",
                     "--caller", "+33612345678", "--at", "2026-11-22T10:00")  # a Sunday
    assert "voicemail:1001" in closed.stdout.splitlines()[-1]


def test_newcomer_demo_prints_passwords_and_its_reception_menu_routes(tmp_path: Path) -> None:
    """What README's run command gives a newcomer: demo accounts that work, and 7000's menu."""
    import re
    import signal

    from tests.peers.engine import free_port, free_port_range
    from tests.peers.pjsua import PjPhone

    port, (lo, hi) = free_port(), free_port_range()
    proc = subprocess.Popen([sys.executable, "-m", "appliance.cli", "run", "--data-dir", str(tmp_path / "data"),
                             "--sip-port", str(port), "--api-port", "0", "--rtp-ports", f"{lo}-{hi}"],
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    try:
        lines: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "engine ready" in line:
                break
        secrets = dict(re.findall(r"extension (\d+)\s+password (\S+)", "".join(lines)))
        assert sorted(secrets) == [str(n) for n in range(1001, 1011)]
        pins = dict(re.findall(r"agent (\d+)\s+PIN (\d+)", "".join(lines)))
        assert sorted(pins) == ["2001", "2002", "2003"]
        assert any("dial 7000" in line for line in lines)
        with PjPhone("alice") as alice, PjPhone("bob") as bob:
            alice.register("1001", secrets["1001"], "127.0.0.1", port)
            bob.register("1002", secrets["1002"], "127.0.0.1", port)
            login = bob.call(f"sip:*61@127.0.0.1:{port}")  # Ben logs in as a sales agent on 1002
            bob.wait_state(login, "CONFIRMED")
            time.sleep(0.5)  # kept (both): each prompt starts before its keys (earlier keys are flushed)
            bob.dial_dtmf(login, "2002#")
            time.sleep(1.5)
            bob.dial_dtmf(login, pins["2002"] + "#")
            bob.wait_state(login, "DISCONNECTED", timeout=10.0)
            call = alice.call(f"sip:7000@127.0.0.1:{port}")
            alice.wait_state(call, "CONFIRMED")
            alice.wait_rx_audio(call, 3.0, timeout=15.0)  # the welcome plays whole; keys count once the menu speaks
            alice.dial_dtmf(call, "1")  # sales: a queue whose agent Ben rings on 1002
            offered = bob.wait_incoming(timeout=10.0)
            bob.answer(offered)
            bob.wait_state(offered, "CONFIRMED")
            alice.hangup(call)
            bob.wait_state(offered, "DISCONNECTED")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
