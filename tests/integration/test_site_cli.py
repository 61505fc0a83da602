"""`plateau firstboot`, `backup`, `web` and `status` on the site's PostgreSQL database (--db / $PLATEAU_DB)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

from appliance.store.db import Store
from tests.peers.engine import REPO_ROOT, Engine, default_config
from tests.peers.pjsua import registered_phone
from tests.peers.postgres import PostgresServer
from web import accounts


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "appliance.cli", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_firstboot_backup_and_web_use_the_database_given(tmp_path: Path, postgres_url: str,
                                                         postgres_server: PostgresServer) -> None:
    data = tmp_path / "data"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(default_config(), sort_keys=False))
    assert _cli("config", "import", str(config), "--data-dir", str(data), "--db", postgres_url).returncode == 0

    # First boot: the first web admin goes to the site's database ($PLATEAU_DB), not a file.
    env = {**os.environ, "PLATEAU_DB": postgres_url}
    boot = _cli("firstboot", "--data-dir", str(data), "--hostname", "node-one", env=env)
    assert boot.returncode == 0, boot.stderr
    with Store(postgres_url) as store:
        assert accounts.get_user(store, "admin") is not None
    assert not (data / "plateau.db").exists()

    # Backup: the configuration from PostgreSQL; the database itself is pg_dump's.
    archive = tmp_path / "site.tar.gz"
    made = _cli("backup", "create", str(archive), "--data-dir", str(data), "--db", postgres_url)
    assert made.returncode == 0, made.stderr
    assert "pg_dump" in made.stdout
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        cfg = yaml.safe_load(tar.extractfile("config.yaml").read())  # type: ignore[union-attr]
    assert "plateau.db" not in names and {e["number"] for e in cfg["extensions"]} >= {"1001", "1010"}
    refused = _cli("backup", "restore", str(archive), "--data-dir", str(data), "--db", postgres_url)
    assert refused.returncode == 2 and "pg_restore" in refused.stderr and "--config-only" in refused.stderr
    restored = _cli("backup", "restore", str(archive), "--data-dir", str(data), "--db", postgres_url,
                    "--config-only")
    assert restored.returncode == 0, restored.stderr
    assert not (data / "plateau.db").exists()

    # The web UI on a database it cannot open: one line naming it, no traceback, no server.
    missing = postgres_server.url("nowhere")
    web = _cli("web", "--data-dir", str(data), "--db", missing, "--bind", "127.0.0.1:0")
    assert web.returncode == 1 and "cannot start" in web.stderr and "nowhere" in web.stderr
    assert "Traceback" not in web.stderr


def test_status_with_the_site_database_lists_the_phones_of_every_engine(tmp_path: Path, postgres_url: str) -> None:
    one = Engine(tmp_path / "one", db=postgres_url, extra_args=["--node", "one"])
    two = Engine(tmp_path / "two", db=postgres_url, extra_args=["--node", "two"])
    with one.running(), two.running(), registered_phone(two, "b", "1002"):
        alone = _cli("status", "--data-dir", str(one.data_dir), "--json")
        assert alone.returncode == 0, alone.stderr
        assert "site" not in json.loads(alone.stdout)
        site = _cli("status", "--data-dir", str(one.data_dir), "--json", "--db", postgres_url)
        assert site.returncode == 0, site.stderr
        shown = json.loads(site.stdout)
        # Engine 1's own registrar took no REGISTER; the site's database has engine 2's phone.
        assert [r["aor"] for r in shown["site"]["registrations"]] == ["1002"]
        text = _cli("status", "--data-dir", str(one.data_dir), "--db", postgres_url)
        assert text.returncode == 0 and "1 registrations" in text.stdout and "1002" in text.stdout
