"""The `plateau` command line against a real engine and data directory."""
from __future__ import annotations

import subprocess
import sys
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
