"""The `engine` fixture against the real engine, and the peers registering through it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.engine import Engine
from tests.peers.pjsua import PjPhone
from tests.peers.sipp import SippProcess, auth_row, run_sipp

# SIPp 3.6.1 answers only the first WWW-Authenticate and only knows MD5, so an engine that
# offers SHA-256 first (RFC 8760) must list MD5 first for SIPp-driven tests.
SIPP_DIGEST = ["--digest-algorithms", "MD5,SHA-256"]


@pytest.fixture
def md5_engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(tmp_path / "engine", extra_args=SIPP_DIGEST).start()
    try:
        yield eng
    finally:
        eng.stop()


def test_engine_fixture_status_kill9_restart(engine: Engine) -> None:
    status, body = engine.api("GET", "/v1/status")
    assert status == 200, body
    pid = engine.pid
    assert pid is not None and os.getpgid(pid) == pid  # own process group
    engine.kill9()
    assert engine.pid is None
    engine.restart()
    assert engine.api("GET", "/v1/status")[0] == 200
    assert engine.pid != pid
    assert (engine.data_dir / "api.json").exists()


def test_api_rejects_a_wrong_token(engine: Engine) -> None:
    good = engine.api_token
    engine.api_token = "not-the-token"
    try:
        assert engine.api("GET", "/v1/status")[0] in (401, 403)
    finally:
        engine.api_token = good


def test_peers_register_with_the_configured_secrets(engine: Engine, tmp_path: Path) -> None:
    with PjPhone("p1001") as phone:
        assert phone.register("1001", engine.secret(1001), "127.0.0.1", engine.sip_port) == 200
    with PjPhone("p1002") as phone:
        code = phone.register("1002", "wrong", "127.0.0.1", engine.sip_port, expect_code=None)
        assert code in (401, 403)


def test_sipp_registers_md5_first(md5_engine: Engine, tmp_path: Path) -> None:
    target = f"127.0.0.1:{md5_engine.sip_port}"
    ok = run_sipp(
        "register_auth",
        target,
        inject=[auth_row("1003", "secret1003")],
        timeout=10,
        workdir=tmp_path / "reg",
    )
    assert ok.returncode == 0, ok.explain()
    bad = run_sipp(
        "register_bad",
        target,
        inject=[auth_row("1003", "nope")],
        timeout=10,
        workdir=tmp_path / "bad",
    )
    assert bad.returncode == 0, bad.explain()


def test_sipp_uac_calls_registered_sipp_uas_through_engine(
    md5_engine: Engine, tmp_path: Path
) -> None:
    registrar = f"127.0.0.1:{md5_engine.sip_port}"
    with SippProcess(
        "uas_register_answer",
        calls=1,
        register=("1002", "secret1002", registrar),
        workdir=tmp_path / "uas",
    ) as uas:
        res = run_sipp(
            "uac_call",
            registrar,
            service="1002",
            inject=[auth_row("1001", "secret1001")],
            timeout=15,
            workdir=tmp_path / "uac",
        )
        assert res.returncode == 0, res.explain()
        assert uas.wait(timeout=10).returncode == 0
