"""`plateau linetest` against a real engine, with an echo phone of our own on extension 1002.

The engine has no echo application, so the far end is a pjsua2 phone in a child process
(this file run as a script: `python -m tests.integration.test_linetest echo-peer CONFIG`)
that registers, answers and connects the call's audio to itself on its conference bridge
(`call_audio.startTransmit(call_audio)`, the pjsua2 loopback): what the line test sends comes
back through the engine's media path twice, so the test proves a real echo, not a replayed
tone. With "reject" in its config the peer refuses calls with that SIP code instead.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


# -- the echo peer (child process) -------------------------------------------------------------
def _echo_peer_main(cfg: dict[str, Any]) -> int:
    import pjsua2 as pj

    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # pjlib writes to fd 1; keep the protocol line clean
    reject = int(cfg.get("reject", 0))

    class EchoCall(pj.Call):
        def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
            ci = self.getInfo()  # keep CallInfo alive while reading its media vector
            for mi in ci.media:
                if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                    aud = self.getAudioMedia(mi.index)
                    aud.startTransmit(aud)  # loop the caller's audio straight back

    class EchoAccount(pj.Account):
        def __init__(self) -> None:
            super().__init__()
            self.reg_code = 0
            self.calls: list[EchoCall] = []

        def onRegState(self, prm: pj.OnRegStateParam) -> None:
            self.reg_code = int(prm.code)

        def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
            call = EchoCall(self, prm.callId)
            self.calls.append(call)
            op = pj.CallOpParam()
            op.statusCode = reject or 200
            if reject:
                call.hangup(op)
            else:
                call.answer(op)

    ep = pj.Endpoint()
    ep.libCreate()
    ec = pj.EpConfig()
    ec.uaConfig.threadCnt = 0
    ec.uaConfig.mainThreadOnly = True
    ec.logConfig.level = ec.logConfig.consoleLevel = 2
    ec.medConfig.threadCnt = 0
    ec.medConfig.hasIoqueue = False
    ec.medConfig.clockRate = ec.medConfig.sndClockRate = 8000
    ec.medConfig.noVad = True
    ec.medConfig.ecTailLen = 0
    ep.libInit(ec)
    tc = pj.TransportConfig()
    tc.boundAddress = "127.0.0.1"
    tid = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tc)
    ep.libStart()
    ep.audDevManager().setNullDev()
    host, port, user = cfg["host"], int(cfg["port"]), cfg["user"]
    ac = pj.AccountConfig()
    ac.idUri = f"sip:{user}@{host}:{port}"
    ac.regConfig.registrarUri = f"sip:{host}:{port}"
    ac.regConfig.retryIntervalSec = 0
    ac.sipConfig.transportId = tid
    ac.sipConfig.proxies.append(f"sip:{host}:{port};lr")
    ac.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", user, 0, cfg["password"]))
    ac.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    acc = EchoAccount()
    acc.create(ac, True)
    deadline = time.monotonic() + 8.0
    while acc.reg_code < 200 and time.monotonic() < deadline:
        ep.libHandleEvents(10)
    out.write(json.dumps({"event": "registered", "code": acc.reg_code}) + "\n")
    stdin = sys.stdin.fileno()
    while True:  # serve until the parent closes our stdin
        ready, _, _ = select.select([stdin], [], [], 0)
        if ready and not os.read(stdin, 4096):
            break
        ep.libHandleEvents(10)
    acc.calls.clear()
    ep.hangupAllCalls()
    for _ in range(20):
        ep.libHandleEvents(10)
    ep.libDestroy()
    return 0


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "echo-peer":
    sys.exit(_echo_peer_main(json.loads(sys.argv[2])))


# -- tests ---------------------------------------------------------------------------------------
import pytest  # noqa: E402 - the echo peer above must not need pytest

from tests.peers.engine import Engine  # noqa: E402
from tests.peers.pjsua import PjPhone  # noqa: E402


@contextmanager
def echo_peer(engine: Engine, user: str, reject: int = 0) -> Iterator[None]:
    """The echo phone registered on `user` for the duration of the block."""
    cfg = {"host": engine.sip_ip, "port": engine.sip_port, "user": user,
           "password": engine.secret(user), "reject": reject}
    log = tempfile.TemporaryFile()  # not a pipe: a chatty peer must never block on it
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.test_linetest", "echo-peer", json.dumps(cfg)],
        cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 15.0)
        line = proc.stdout.readline() if ready else b""
        if not line:
            log.seek(0)
            pytest.fail(f"echo peer did not start:\n{log.read().decode(errors='replace')[-3000:]}")
        assert json.loads(line)["code"] == 200, f"echo peer registration: {line!r}"
        yield
    finally:
        if proc.stdin is not None:
            proc.stdin.close()  # the peer's signal to leave
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5.0)
        if proc.stdout is not None:
            proc.stdout.close()
        log.close()


def linetest(engine: Engine, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", "linetest", *args,
         "--server", f"{engine.sip_ip}:{engine.sip_port}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=40,
    )


def test_echo_line_passes_with_a_good_mos(engine_module: Engine) -> None:
    engine = engine_module
    with engine.no_tracebacks(), echo_peer(engine, "1002"):
        res = linetest(engine, "1002", "--user", "1001", "--password", engine.secret("1001"),
                       "--seconds", "3", "--expect-echo")
    out = res.stdout
    sys.stderr.write(out)  # the figures, for the record (pytest -s or a failure shows them)
    assert res.returncode == 0, f"{out}\n{res.stderr}"
    assert out.startswith("Line test to sip:1002@") and "RESULT: PASS" in out, out
    assert "codec          PCMU/8000" in out
    mos = re.search(r"MOS (\d\.\d\d)", out)
    assert mos is not None and float(mos.group(1)) >= 4.0, out
    rt = re.search(r"audio round trip (\d+\.\d) ms", out)
    assert rt is not None and 0.0 < float(rt.group(1)) < 500.0, out
    # A clean loop gives a purity of 1.00; one late or concealed frame on a loaded box costs a
    # hundredth or two, so the window is timing-tolerant (the pass threshold itself is 0.5).
    purity = re.search(r"tone heard \d\.\d\d s, purity (\d\.\d\d)", out)
    assert purity is not None and float(purity.group(1)) >= 0.97, out
    assert re.search(r"received +\d{3} packets, lost 0 ", out), out


def test_silent_far_end_fails_the_echo_check(engine_module: Engine, tmp_path: Path) -> None:
    """A phone that answers but sends nothing back: the call works, the echo check FAILs."""
    engine = engine_module
    with PjPhone("silent", auto_answer=True) as phone:
        phone.register("1003", engine.secret("1003"), engine.sip_ip, engine.sip_port)
        res = linetest(engine, "1003", "--user", "1001", "--password", engine.secret("1001"),
                       "--seconds", "1", "--expect-echo")
    assert res.returncode == 1, f"{res.stdout}\n{res.stderr}"
    assert "RESULT: FAIL (the tone did not come back)" in res.stdout
    assert "tone heard 0.00 s" in res.stdout and "MOS " in res.stdout


def test_rejecting_target_fails_with_its_sip_code(engine_module: Engine) -> None:
    engine = engine_module
    with echo_peer(engine, "1004", reject=486):
        res = linetest(engine, "1004", "--user", "1001", "--password", engine.secret("1001"),
                       "--expect-echo")
    assert res.returncode == 4, f"{res.stdout}\n{res.stderr}"
    assert re.search(r"call to sip:1004@\S+ failed: 486 Busy Here", res.stderr), res.stderr
    assert res.stdout == ""


def test_unreachable_extension_refused_registration_and_bad_target(engine_module: Engine) -> None:
    engine = engine_module
    res = linetest(engine, "1009")  # anonymous: the engine challenges the INVITE
    assert res.returncode == 4 and "failed: 407 " in res.stderr and "--user" in res.stderr
    res = linetest(engine, "1009", "--user", "1001", "--password", engine.secret("1001"))
    assert res.returncode == 4, f"{res.stdout}\n{res.stderr}"  # nobody registered on 1009
    assert re.search(r"call to sip:1009@\S+ failed: [45]\d\d ", res.stderr), res.stderr
    res = linetest(engine, "1002", "--user", "1001", "--password", "wrong")
    assert res.returncode == 3, f"{res.stdout}\n{res.stderr}"
    assert re.search(r"registration as 1001 at \S+ refused: 40[13] ", res.stderr), res.stderr
    res = linetest(engine, "not a number")
    assert res.returncode == 2 and "not an extension" in res.stderr, res.stderr
