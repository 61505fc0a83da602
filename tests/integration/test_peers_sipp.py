"""SIPp client scenarios against SIPp server twins (no engine): proves tests/sipp and the helper."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.peers.sipp import SippProcess, auth_row, parse_stats, run_sipp

AUTH = [auth_row("1001", "secret1001", "1003")]


@pytest.mark.parametrize(
    ("uac", "uas"),
    [
        ("uac_call", "uas_register_answer"),
        ("uac_expect_busy", "uas_register_busy"),
        ("uac_cancel", "uas_ring_cancel"),
        ("uac_hold", "uas_hold"),
        ("options", "uas_options"),
        ("uac_refer", "uas_refer"),
    ],
)
def test_uac_against_twin(uac: str, uas: str, tmp_path: Path) -> None:
    with SippProcess(uas, calls=1, workdir=tmp_path / "uas") as server:
        res = run_sipp(
            uac, server.address, service="1002", inject=AUTH, timeout=15, workdir=tmp_path / "uac"
        )
        assert res.returncode == 0 and res.successful == 1, res.explain()
        srv = server.wait(timeout=10)
    assert srv.returncode == 0, srv.explain()


@pytest.mark.parametrize(
    ("password", "scenario"), [("secret1001", "register_auth"), ("wrong", "register_bad")]
)
def test_register_against_twin_registrar(password: str, scenario: str, tmp_path: Path) -> None:
    keys = [["1001", "secret1001"]]
    with SippProcess("uas_registrar", calls=1, inject=keys, workdir=tmp_path / "uas") as reg:
        res = run_sipp(
            scenario,
            reg.address,
            inject=[auth_row("1001", password)],
            timeout=10,
            workdir=tmp_path / "uac",
        )
        assert res.returncode == 0, res.explain()
        reg.wait(timeout=5)
    # A correct password must not pass register_bad, nor a wrong one register_auth.
    wrong = "register_bad" if scenario == "register_auth" else "register_auth"
    with SippProcess("uas_registrar", calls=1, inject=keys, workdir=tmp_path / "uas2") as reg:
        res = run_sipp(
            wrong,
            reg.address,
            inject=[auth_row("1001", password)],
            timeout=5,
            workdir=tmp_path / "uac2",
        )
        assert res.returncode != 0, res.explain()


def test_registered_uas_answers_after_registering(tmp_path: Path) -> None:
    """SippProcess(register=...) REGISTERs its own port, then answers calls there."""
    registrar = SippProcess(
        "uas_registrar", calls=1, inject=[["1002", "secret1002"]], workdir=tmp_path / "registrar"
    )
    with (
        registrar,
        SippProcess(
            "uas_register_answer",
            calls=1,
            register=("1002", "secret1002", registrar.address),
            workdir=tmp_path / "uas",
        ) as uas,
    ):
        assert uas.register_result is not None and uas.register_result.successful == 1
        contact = f"<sip:1002@127.0.0.1:{uas.port};transport=UDP>"
        assert contact in uas.register_result.messages
        res = run_sipp(
            "uac_call",
            uas.address,
            service="1002",
            inject=AUTH,
            timeout=10,
            workdir=tmp_path / "uac",
        )
        assert res.returncode == 0, res.explain()


def test_parse_stats() -> None:
    csv = "StartTime;TotalCallCreated;SuccessfulCall(C);\n1;2;3;\n4;5;6;\n"
    assert parse_stats(csv) == {"StartTime": "4", "TotalCallCreated": "5", "SuccessfulCall(C)": "6"}
