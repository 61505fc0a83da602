"""A call whose parties stop sending RTP (a phone unplugged: no BYE ever comes) is released."""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tests.peers.engine import Engine, default_config
from tests.peers.sipp import SippProcess, auth_row, run_sipp

SCENARIOS = Path(__file__).resolve().parents[1] / "sipp"


def test_silent_call_is_released_with_bye_both_ways(tmp_path: Path) -> None:
    cfg = default_config()
    eng = Engine(tmp_path / "engine", config=cfg,
                 extra_args=["--digest-algorithms", "MD5,SHA-256", "--rtp-timeout", "2"])
    eng.start()
    try:
        with eng.no_tracebacks():
            target = f"127.0.0.1:{eng.sip_port}"
            # Neither SIPp sends RTP; both wait for the BYE the engine must send them.
            with SippProcess(SCENARIOS / "uas_register_answer.xml", calls=1,
                             register=("1002", eng.secret("1002"), target), workdir=tmp_path / "b") as b:
                t0 = time.monotonic()
                a = run_sipp(SCENARIOS / "engine" / "uac_wait_bye.xml", target, service="1002",
                             inject=[auth_row("1001", eng.secret("1001"))], timeout=20, workdir=tmp_path / "a")
                elapsed = time.monotonic() - t0
                assert a.returncode == 0 and a.successful == 1, a.explain()
                res = b.wait(timeout=10)
                assert res.returncode == 0 and res.successful == 1, res.explain()
            assert 2.0 <= elapsed < 12.0
        db = sqlite3.connect(eng.data_dir / "plateau.db")
        [(disposition, cause)] = db.execute("SELECT disposition, hangup_cause FROM cdr").fetchall()
        db.close()
        assert disposition == "ANSWERED" and "no RTP" in cause
    finally:
        eng.stop()
