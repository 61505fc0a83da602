"""Two-box HA configuration (appliance/cluster/ha.py): what it refuses, and what keepalived,
sh and libpq make of what it writes. The failover itself: tests/integration/test_ha_failover.py."""
from __future__ import annotations

import os
import subprocess
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import psycopg
import pytest

from appliance.cli import main
from appliance.cluster import ha
from tests.peers.engine import free_port
from tests.peers.postgres import PostgresServer

PAIR = ha.HaPair(a=IPv4Address("10.9.0.11"), b=IPv4Address("10.9.0.12"), vip=IPv4Interface("10.9.0.10/24"))
SECRETS = ha.HaSecrets("db-secret", "repl-secret")


def _pair(**kw: object) -> ha.HaPair:
    fields = {"a": PAIR.a, "b": PAIR.b, "vip": PAIR.vip, **kw}
    return ha.HaPair(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("change", "message"), [
    ({"b": IPv4Address("10.9.0.11")}, "same address 10.9.0.11"),
    ({"vip": IPv4Interface("10.9.0.12/24")}, "is a box's own address"),
    ({"vip": IPv4Interface("10.8.0.10/24")}, "box a (10.9.0.11) is not in the virtual IP's network"),
    ({"interface": "eth0; reboot"}, "not a network interface name"),
    ({"vrid": 0}, "vrid 0 is not 1-255"),
    ({"pg_port": 70000}, "pg_port 70000"),
    ({"database": "Plateau DB"}, "database 'Plateau DB'"),
])
def test_a_bad_pair_is_refused_naming_the_setting(change: dict[str, object], message: str) -> None:
    with pytest.raises(ha.HaConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _pair(**change)


def _keepalived_check(conf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["keepalived", "-t", "-f", str(conf)], capture_output=True, text=True, timeout=30,
                          check=False)


@pytest.mark.parametrize("box", ha.BOXES)
def test_keepalived_accepts_each_box_s_configuration(tmp_path: Path, box: str) -> None:
    start, stop = ha.systemd_commands(tmp_path)
    files = ha.write_box(PAIR, box, tmp_path, SECRETS, ha.BoxCommands(tmp_path / "pg", start, stop))
    check = _keepalived_check(files.keepalived)
    assert check.returncode == 0, check.stdout + check.stderr
    text = files.keepalived.read_text()
    assert f"unicast_src_ip {PAIR.address(box)}" in text and f"        {PAIR.peer(box)}\n" in text
    assert f"priority {ha.PRIORITY[box]}" in text and "nopreempt" in text and "10.9.0.10/24 dev eth0" in text


def test_keepalived_check_fails_on_a_broken_configuration(tmp_path: Path) -> None:
    files = ha.write_box(PAIR, "a", tmp_path, SECRETS, ha.BoxCommands(tmp_path / "pg", "true", "true"))
    files.keepalived.write_text(files.keepalived.read_text().replace("advert_int 1", "advert_int {"))
    assert _keepalived_check(files.keepalived).returncode != 0


def _notify(tmp_path: Path, state: str, standby: bool) -> tuple[str, str]:
    data = tmp_path / "pg"
    data.mkdir(parents=True, exist_ok=True)
    if standby:
        (data / "standby.signal").write_text("")
    marks = tmp_path / "marks"
    commands = ha.BoxCommands(data, start_services=f"echo start >> {marks}", stop_services=f"echo stop >> {marks}",
                              pg_bin=tmp_path / "no-such-bin", pg_user="", log_file=tmp_path / "notify.log")
    files = ha.write_box(PAIR, "b", tmp_path / "ha", SECRETS, commands)
    res = subprocess.run([str(files.notify), "INSTANCE", "plateau", state, "100"], capture_output=True,
                         text=True, timeout=30, check=False)
    return str(res.returncode), (marks.read_text() if marks.exists() else "")


def test_notify_starts_the_engine_on_master_of_a_primary_and_stops_it_otherwise(tmp_path: Path) -> None:
    assert _notify(tmp_path / "m", "MASTER", standby=False) == ("0", "start\n")
    for state in ("BACKUP", "FAULT", "STOP"):
        assert _notify(tmp_path / state, state, standby=False) == ("0", "stop\n")


def test_notify_never_starts_the_engine_when_the_promotion_fails(tmp_path: Path) -> None:
    # A standby (standby.signal) whose pg_ctl cannot run: the engine would find no writable database.
    code, marks = _notify(tmp_path, "MASTER", standby=True)
    assert (code, marks) == ("1", "")
    assert "promotion failed" in (tmp_path / "notify.log").read_text()


def test_the_engine_url_lists_the_local_box_first_and_takes_only_a_primary() -> None:
    for box, hosts in (("a", "10.9.0.11,10.9.0.12"), ("b", "10.9.0.12,10.9.0.11")):
        info = psycopg.conninfo.conninfo_to_dict(ha.engine_db_url(PAIR, box, ha.HaSecrets("p@ss/w:rd", "x")))
        assert (info["host"], info["port"], info["dbname"], info["user"], info["password"]) == (
            hosts, "5432,5432", "plateau", "plateau", "p@ss/w:rd")
        assert info["target_session_attrs"] == "read-write"


def test_the_standby_is_made_by_pg_basebackup_streaming_under_its_name(tmp_path: Path) -> None:
    argv = ha.basebackup_argv(PAIR, "b", tmp_path / "data", SECRETS)
    assert argv[0].endswith("/pg_basebackup") and "-R" in argv and argv[argv.index("-D") + 1] == str(tmp_path / "data")
    conninfo = psycopg.conninfo.conninfo_to_dict(argv[argv.index("-d") + 1])
    assert (conninfo["host"], conninfo["user"], conninfo["application_name"]) == (
        "10.9.0.11", "replicator", "plateau_b")


def test_plateau_ha_write_makes_the_secrets_on_box_a_and_needs_them_on_box_b(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["ha", "write", "--a", "10.9.0.11", "--b", "10.9.0.12", "--vip", "10.9.0.10/24"]
    assert main([*args, "--box", "b", "--out", str(tmp_path / "b")]) == 1
    assert "copy it from box a" in capsys.readouterr().err
    assert main([*args, "--box", "a", "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "prepare-primary" in out and "copy" in out
    secrets = tmp_path / "a" / "ha-secrets.json"
    assert secrets.stat().st_mode & 0o777 == 0o600
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "ha-secrets.json").write_text(secrets.read_text())
    assert main([*args, "--box", "b", "--out", str(tmp_path / "b")]) == 0
    assert "pg_basebackup" in capsys.readouterr().out
    env_a, env_b = ((tmp_path / box / "plateau-ha.env").read_text() for box in "ab")
    password = ha.HaSecrets.load(secrets).db_password
    assert password in env_a and password in env_b and "PLATEAU_NODE=b" in env_b
    assert os.access(tmp_path / "b" / "plateau-ha-notify", os.X_OK)
    dropin = (tmp_path / "b" / "plateau-engine.ha.conf").read_text()
    assert "ConditionPathExists=\n" in dropin and "--sip-ip 10.9.0.10 " in dropin


@pytest.mark.parametrize(("bad", "message"), [
    (["--vip", "10.9.0.300/24"], "10.9.0.300/24"),
    (["--vip", "10.8.0.10/24"], "not in the virtual IP's network"),
])
def test_plateau_ha_write_refuses_bad_addresses_with_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: list[str], message: str) -> None:
    args = ["ha", "write", "--box", "a", "--a", "10.9.0.11", "--b", "10.9.0.12", "--out", str(tmp_path)]
    assert main([*args, *bad]) == 1
    err = capsys.readouterr().err
    assert err.startswith("plateau ha: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "keepalived.conf").exists()


def test_prepare_primary_makes_the_roles_once_and_again(
        tmp_path: Path, postgres_server: PostgresServer, capsys: pytest.CaptureFixture[str]) -> None:
    secrets = tmp_path / "ha-secrets.json"
    ha.HaSecrets("engine-pw", "stream-pw").save(secrets)
    superuser = postgres_server.url()
    try:
        for _ in range(2):  # idempotent: a second run sets the passwords again and keeps the database
            assert main(["ha", "prepare-primary", "--secrets", str(secrets), "--db", superuser]) == 0
        assert "ready" in capsys.readouterr().out
        with psycopg.connect(superuser) as conn:
            roles = dict(conn.execute("SELECT rolname, rolreplication FROM pg_roles"
                                      " WHERE rolname IN ('plateau', 'replicator')").fetchall())
            owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'plateau'").fetchone()
        # plateau is this test server's bootstrap superuser already (tests/peers/postgres.py), so it
        # keeps its attributes; replicator is new, with REPLICATION.
        assert roles == {"plateau": True, "replicator": True}
        assert owner == ("plateau",)
        host, port = "127.0.0.1", postgres_server.port
        # The standby's role may open a replication connection, with the password from the file.
        with psycopg.connect(f"host={host} port={port} user=replicator password=stream-pw dbname=postgres"
                             " replication=database") as conn:
            assert conn.execute("IDENTIFY_SYSTEM").fetchone() is not None
    finally:
        postgres_server.drop_database(postgres_server.url("plateau"))
        with psycopg.connect(superuser, autocommit=True) as conn:
            conn.execute("DROP ROLE IF EXISTS replicator")


def test_prepare_primary_on_an_unreachable_server_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secrets = tmp_path / "ha-secrets.json"
    ha.HaSecrets("a", "b").save(secrets)
    url = f"postgresql://plateau@127.0.0.1:{free_port()}/postgres"
    assert main(["ha", "prepare-primary", "--secrets", str(secrets), "--db", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("plateau ha: cannot prepare the primary:") and "Traceback" not in err
    (tmp_path / "bad.json").write_text("{}")
    assert main(["ha", "prepare-primary", "--secrets", str(tmp_path / "bad.json"), "--db", url]) == 1
    assert "not a Plateau HA secrets file" in capsys.readouterr().err
