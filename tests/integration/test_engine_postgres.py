"""The engine on PostgreSQL (`plateau run --db postgresql://...`): a real call, its CDR in the database."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from appliance.store.db import Store
from tests.peers.engine import REPO_ROOT, Engine, default_config
from tests.peers.postgres import PostgresServer
from tests.peers.pjsua import registered_phone as _phone
from tests.peers.polling import wait_until


def test_a_call_through_an_engine_on_postgresql_writes_its_cdr_there(tmp_path: Path, postgres_url: str) -> None:
    eng = Engine(tmp_path / "engine", db=postgres_url)
    with eng.running():
        with _phone(eng, "a", "1001") as a, _phone(eng, "b", "1002", auto_answer=True), Store(postgres_url) as store:
            # The phones registered through the engine: their bindings are in PostgreSQL.
            assert {r.aor for r in store.registrations()} >= {"1001", "1002"}
            ca = a.call(f"sip:1002@127.0.0.1:{eng.sip_port}")
            a.wait_state(ca, "CONFIRMED")
            a.wait_rx_audio(ca, 0.5)
            a.hangup(ca)
            a.wait_state(ca, "DISCONNECTED")
        with Store(postgres_url) as store:
            closed = wait_until(lambda: [c for c in store.cdrs() if c.disposition],
                                what="the closed CDR in PostgreSQL")
    assert [(c.caller, c.callee, c.disposition) for c in closed] == [("1001", "1002", "ANSWERED")]
    # Nothing went to a SQLite file beside it: the configuration was imported there too.
    assert not (eng.data_dir / "plateau.db").exists()


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "appliance.cli", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_plateau_db_selects_the_database_and_a_bad_one_is_a_clear_error(tmp_path: Path, postgres_url: str,
                                                                         postgres_server: PostgresServer) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(default_config(), sort_keys=False))
    imported = _cli("config", "import", str(config), "--data-dir", str(tmp_path / "data"), "--db", postgres_url)
    assert imported.returncode == 0, imported.stderr
    # $PLATEAU_DB stands for --db: the export reads the PostgreSQL database, not the empty data dir.
    exported = _cli("config", "export", "--data-dir", str(tmp_path / "empty"),
                    env={**os.environ, "PLATEAU_DB": postgres_url})
    assert exported.returncode == 0, exported.stderr
    assert {e["number"] for e in yaml.safe_load(exported.stdout)["extensions"]} >= {"1001", "1002"}
    assert not (tmp_path / "empty" / "plateau.db").exists()
    # A database that does not exist: one line naming it, no traceback, the password not shown.
    missing = postgres_server.url("nowhere").replace("plateau@", "plateau:hunter2@")
    bad = _cli("config", "export", "--db", missing)
    assert bad.returncode == 1 and "cannot connect" in bad.stderr and "nowhere" in bad.stderr
    assert "Traceback" not in bad.stderr and "hunter2" not in bad.stderr
