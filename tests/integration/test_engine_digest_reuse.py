"""A phone that reuses the engine's nonce with nc+1 (RFC 7616 §3.4, RFC 2617 §3.2.2) is not
challenged again: two calls, one 407. The peer is SIPp (tests/sipp/uac_two_calls_one_nonce.xml):
pjsua2 2.15 as shipped sends no credentials on a new dialog (PJSIP_AUTH_AUTO_SEND_NEXT is 0 and
each dialog has its own auth session), so it is challenged on every INVITE whatever the server
accepts; hardware phones that cache credentials behave like this scenario."""
from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.sip.digest import parse_digest

from tests.peers.engine import Engine
from tests.peers.polling import wait_until
from tests.peers.sipp import SippProcess, auth_row, run_sipp

# SIPp answers challenges with MD5 only: offer MD5 first (as tests/integration/test_engine_sipp.py).
ENGINE_ARGS = ["--digest-algorithms", "MD5,SHA-256"]


@pytest.fixture
def pbx(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(tmp_path / "engine", extra_args=ENGINE_ARGS)
    with eng.running():
        yield eng


def _sent(messages: str, start: str) -> list[str]:
    blocks = re.split(r"-{20,} [\d\-: .]+\n", messages)
    return [b for b in blocks if re.search(rf"message sent \(\d+ bytes\):\s+{start}", b)]


def _received(messages: str, start: str) -> list[str]:
    blocks = re.split(r"-{20,} [\d\-: .]+\n", messages)
    return [b for b in blocks if re.search(rf"message received \[\d+\] bytes :\s+{start}", b)]


def test_two_calls_reusing_the_nonce_cost_one_407(pbx: Engine, tmp_path: Path) -> None:
    target = f"{pbx.sip_ip}:{pbx.sip_port}"
    with SippProcess("load_uas", calls=2, register=("1002", pbx.secret("1002"), target),
                     workdir=tmp_path / "uas"):
        res = run_sipp("uac_two_calls_one_nonce", target, service="1002",
                       inject=[auth_row("1001", pbx.secret("1001"))], timeout=15,
                       workdir=tmp_path / "uac")
        assert res.returncode == 0 and res.successful == 1, res.explain()
    challenges = _received(res.messages, "SIP/2.0 407")
    assert len(challenges) == 1, res.explain()
    invites = _sent(res.messages, "INVITE ")
    creds = [parse_digest(m.group(1)) or {} for b in invites
             if (m := re.search(r"^\s*Proxy-Authorization: (.*)$", b, re.M))]
    assert [c.get("nc") for c in creds] == ["00000001", "00000002"], res.explain()
    assert creds[0]["nonce"] == creds[1]["nonce"]  # the same nonce, answered twice

    def answered() -> list[str]:
        db = sqlite3.connect(pbx.data_dir / "plateau.db")
        try:
            return [r[0] for r in db.execute("SELECT disposition FROM cdr WHERE disposition IS NOT NULL")]
        finally:
            db.close()

    assert wait_until(lambda: answered() if len(answered()) == 2 else None,
                      what="two closed CDRs") == ["ANSWERED", "ANSWERED"]
