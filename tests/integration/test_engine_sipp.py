"""The engine end to end with SIPp peers: registration, calls, CANCEL, busy, hold, REFER, TCP.

Every call goes A (a SIPp UAC as 1001, answering the engine's 407 challenge) -> engine ->
B (a SIPp UAS that first REGISTERs as 1002 with digest). SIPp only speaks MD5 digest, so
the engine offers MD5 first (``--digest-algorithms MD5,SHA-256``). One engine serves the
module; each test removes the bindings it made (REGISTER Contact: *, Expires: 0) so no UAS
of one test rings in the next, and fails if the engine printed an unhandled exception (sippy
reports exceptions raised in callbacks on stdout and carries on).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.peers.engine import Engine, default_config
from tests.peers.sipp import SippProcess, SippResult, auth_row, run_sipp

SCENARIOS = Path(__file__).resolve().parents[1] / "sipp" / "engine"
ENGINE_ARGS = ["--digest-algorithms", "MD5,SHA-256", "-v"]


@pytest.fixture(scope="module")
def eng(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = Engine(tmp_path_factory.mktemp("engine"), config=default_config(), persistent=True,
                    extra_args=ENGINE_ARGS)
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(autouse=True)
def no_engine_exceptions(eng: Engine) -> Iterator[None]:
    """No traceback printed by the engine (sippy reports callback exceptions on stdout)."""
    with eng.no_tracebacks():
        yield


def target(eng: Engine) -> str:
    return f"{eng.sip_ip}:{eng.sip_port}"


def scenario(name: str) -> Path:
    return SCENARIOS / f"{name}.xml"


def sipp(eng: Engine, name: str, workdir: Path, *, user: str = "1001", password: str | None = None,
         service: str | None = "1002", extra: str | None = None, transport: str = "u1",
         timeout: float = 15) -> SippResult:
    """Run one of our client scenarios as `user` against the engine."""
    row = auth_row(user, password if password is not None else eng.secret(user))
    if extra is not None:
        row.append(extra)
    return run_sipp(scenario(name), target(eng), service=service, inject=[row], transport=transport,
                    timeout=timeout, workdir=workdir)


def unregister(eng: Engine, ext: str, workdir: Path, transport: str = "u1") -> None:
    res = sipp(eng, "unregister", workdir, user=ext, service=None, transport=transport, timeout=10)
    assert res.returncode == 0, f"could not unregister {ext}:\n{res.explain()}"


@contextmanager
def registered_uas(eng: Engine, ext: str, name: str, workdir: Path,
                   transport: str = "u1") -> Iterator[SippProcess]:
    """A SIPp UAS (our scenario `name`, or the peers' one) registered as `ext`; unregistered after."""
    path = scenario(name) if scenario(name).exists() else name
    proc = SippProcess(path, calls=1, register=(ext, eng.secret(ext), target(eng)),
                       transport=transport, workdir=workdir)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
        unregister(eng, ext, workdir / "unregister", transport)


def finished(proc: SippProcess, timeout: float = 10.0) -> SippResult:
    """Wait for a SippProcess to end *by itself* with its one call successful."""
    assert proc.proc is not None
    deadline = time.monotonic() + timeout
    while proc.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    ended = proc.proc.poll() is not None
    res = proc.wait(timeout=0.1) if ended else proc.result()
    assert ended, f"SIPp {proc.scenario} did not finish within {timeout}s:\n{res.explain()}"
    assert res.returncode == 0 and res.successful == 1, res.explain()
    return res


def wait_calls(eng: Engine, predicate, timeout: float = 5.0) -> list[dict]:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        status, calls = eng.api("GET", "/v1/calls")
        assert status == 200, calls
        if predicate(calls) or time.monotonic() > deadline:
            return calls
        time.sleep(0.05)


def received(messages: str, method: str) -> list[str]:
    """The `method` requests SIPp received, as text, in order (from its -trace_msg log)."""
    blocks = re.split(r"-{20,} [\d\-: .]+\n", messages)
    return [b for b in blocks if re.search(rf"message received \[\d+\] bytes :\s+{method} ", b)]


# -- registration -----------------------------------------------------------------------
def test_register_right_password_200_wrong_401(eng: Engine, tmp_path: Path) -> None:
    ok = run_sipp("register_auth", target(eng), inject=[auth_row("1004", "secret1004")], timeout=10,
                  workdir=tmp_path / "ok")
    assert ok.returncode == 0 and ok.successful == 1, ok.explain()
    _, regs = eng.api("GET", "/v1/registrations")
    assert any(r["aor"] == "1004" for r in regs), regs
    bad = sipp(eng, "register_wrong", tmp_path / "bad", user="1005", password="not-the-secret",
               service=None, timeout=10)
    assert bad.returncode == 0 and bad.successful == 1, bad.explain()
    _, regs = eng.api("GET", "/v1/registrations")
    assert not any(r["aor"] == "1005" for r in regs), regs
    unregister(eng, "1004", tmp_path / "unreg")
    _, regs = eng.api("GET", "/v1/registrations")
    assert not any(r["aor"] == "1004" for r in regs), regs


def test_options_200_with_allow(eng: Engine, tmp_path: Path) -> None:
    res = run_sipp(scenario("options_allow"), target(eng), service="1002", timeout=5, workdir=tmp_path)
    assert res.returncode == 0 and res.successful == 1, res.explain()


# -- calls --------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_call_caller_hangs_up(eng: Engine, tmp_path: Path, transport: str) -> None:
    with registered_uas(eng, "1002", "uas_register_answer", tmp_path / "b", transport) as b:
        a = sipp(eng, "uac_call_quick", tmp_path / "a", transport=transport)
        assert a.returncode == 0 and a.successful == 1, a.explain()
        res = finished(b)  # B got the BYE the engine relayed
    assert "BYE sip:" in res.messages
    assert wait_calls(eng, lambda calls: not calls) == []


def test_call_callee_hangs_up(eng: Engine, tmp_path: Path) -> None:
    with registered_uas(eng, "1002", "uas_answer_bye", tmp_path / "b") as b:
        a = sipp(eng, "uac_wait_bye", tmp_path / "a")
        assert a.returncode == 0 and a.successful == 1, a.explain()
        finished(b)
    assert len(received(a.messages, "BYE")) == 1
    assert wait_calls(eng, lambda calls: not calls) == []


def test_cancel_before_answer(eng: Engine, tmp_path: Path) -> None:
    with registered_uas(eng, "1002", "uas_ring_cancel", tmp_path / "b") as b:
        a = sipp(eng, "uac_cancel_auth", tmp_path / "a")
        assert a.returncode == 0 and a.successful == 1, a.explain()
        res = finished(b)  # B got the CANCEL, answered 487 and got its ACK
    assert received(res.messages, "CANCEL"), res.messages[-3000:]
    assert "SIP/2.0 487" in a.messages
    assert wait_calls(eng, lambda calls: not calls) == []


def test_busy_callee_486(eng: Engine, tmp_path: Path) -> None:
    with registered_uas(eng, "1002", "uas_register_busy", tmp_path / "b") as b:
        a = run_sipp("uac_expect_busy", target(eng), service="1002",
                     inject=[auth_row("1001", eng.secret("1001"))], timeout=15, workdir=tmp_path / "a")
        assert a.returncode == 0 and a.successful == 1, a.explain()
        finished(b)
    assert "SIP/2.0 486" in a.messages
    assert wait_calls(eng, lambda calls: not calls) == []


def test_hold_and_resume(eng: Engine, tmp_path: Path) -> None:
    with registered_uas(eng, "1002", "uas_register_answer", tmp_path / "b") as b:
        row = auth_row("1001", eng.secret("1001"))
        a = SippProcess(scenario("uac_hold_resume"), target=target(eng), calls=1, inject=[row],
                        extra_args=["-s", "1002", "-timeout", "15s"], workdir=tmp_path / "a")
        with a:
            # While A holds (a=sendonly), the engine marks A's channel held (it plays MOH to B).
            deadline = time.monotonic() + 8.0
            held = False
            while time.monotonic() < deadline and not held:
                _, chans = eng.api("GET", "/v1/channels")
                held = any(c["held"] and c["direction"] == "inbound" for c in chans)
                time.sleep(0.05)
            assert held, "A's channel never showed held"
            res = finished(a, timeout=10)
        finished(b)
    _, chans = eng.api("GET", "/v1/channels")
    assert not any(c["held"] for c in chans)
    assert "a=recvonly" in res.messages


def test_refer_blind_transfer(eng: Engine, tmp_path: Path) -> None:
    with registered_uas(eng, "1002", "uas_register_answer", tmp_path / "b") as b, \
            registered_uas(eng, "1003", "uas_register_answer", tmp_path / "c") as c:
        a = sipp(eng, "uac_refer_blind", tmp_path / "a", extra="1003")
        assert a.returncode == 0 and a.successful == 1, a.explain()
        notifies = received(a.messages, "NOTIFY")
        bodies = [re.findall(r"SIP/2\.0 \d{3} [^\r\n]*", n.split("\n\n", 1)[-1]) for n in notifies]
        assert bodies[0] == ["SIP/2.0 100 Trying"], notifies
        assert bodies[-1] == ["SIP/2.0 200 OK"], notifies
        states = [re.search(r"Subscription-State:\s*(\S+)", n, re.IGNORECASE) for n in notifies]
        assert all(s is not None for s in states), notifies
        assert states[-1].group(1).startswith("terminated")  # type: ignore[union-attr]
        assert all(s.group(1).startswith("active") for s in states[:-1])  # type: ignore[union-attr]
        assert len(received(a.messages, "BYE")) == 1  # the engine released A...
        assert a.messages.index(notifies[-1]) < a.messages.index(received(a.messages, "BYE")[0])
        # B and 1003 stay connected: one call, B's channel and 1003's.
        calls = wait_calls(eng, lambda cs: len(cs) == 1 and cs[0]["state"] == "up")
        assert len(calls) == 1 and calls[0]["state"] == "up", calls
        _, chans = eng.api("GET", "/v1/channels")
        assert len(chans) == 2 and all(c["state"] == "up" for c in chans), chans
        # ...after the transfer target answered: B's leg and a leg to 1003, bridged.
        assert {c["id"] for c in chans} == {calls[0]["a"], calls[0]["b"]}, (calls, chans)
        assert "1003" in {c["callee"] for c in chans}, chans
        assert len({c["bridge"] for c in chans}) == 1 and chans[0]["bridge"], chans
        # Hang up from the API: both UASes get their BYE and finish cleanly.
        status, _ = eng.api("POST", f"/v1/channels/{calls[0]['a']}/hangup")
        assert status == 200
        finished(b)
        finished(c)
    assert wait_calls(eng, lambda calls: not calls) == []


def test_tcp_register_and_call_to_tcp_phone(eng: Engine, tmp_path: Path) -> None:
    """Both phones on TCP: the callee's INVITE goes to where its TCP REGISTER came from."""
    with registered_uas(eng, "1006", "uas_register_answer", tmp_path / "b", transport="t1") as b:
        _, regs = eng.api("GET", "/v1/registrations")
        assert any(r["aor"] == "1006" and r["transport"] == "tcp" for r in regs), regs
        a = sipp(eng, "uac_call_quick", tmp_path / "a", service="1006", transport="t1")
        assert a.returncode == 0 and a.successful == 1, a.explain()
        finished(b)
