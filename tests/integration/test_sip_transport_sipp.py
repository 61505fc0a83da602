"""SIPp against the test UAS of test_sip_transport.py, over UDP (-t u1) and TCP (-t t1).

SIPp 3.6.1 computes MD5 (and AKAv1-MD5) digests only and answers the *first*
WWW-Authenticate it receives; with RFC 8760's SHA-256-first challenge order it gives
up ("authentication must use MD5 or AKAv1-MD5"), so the REGISTER runs use a UAS
configured with ``algorithms=("MD5",)`` and one test pins that SIPp limitation.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from test_sip_transport import Uas

SIPP = shutil.which("sipp")

HEAD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="{name}">
"""
REQ = """  <send retrans="500">
    <![CDATA[
      {method} sip:{ruri} SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];rport;branch=[branch]
      From: <sip:1001@pbx.test>;tag=[pid]SIPpTag[call_number]
      To: <sip:1001@pbx.test>
      Call-ID: [call_id]
      CSeq: {cseq} {method}
      Max-Forwards: 70
{extra}      Content-Length: 0

    ]]>
  </send>
"""
CONTACT = ("      Contact: <sip:1001@[local_ip]:[local_port];transport=[transport]>\n"
           "      Expires: 300\n")

OPTIONS_XML = HEAD.format(name="options") + REQ.format(
    method="OPTIONS", ruri="1001@pbx.test", cseq=1, extra="") + \
    '  <recv response="200"/>\n</scenario>\n'

REGISTER_XML = HEAD.format(name="register") + REQ.format(
    method="REGISTER", ruri="pbx.test", cseq=1, extra=CONTACT) + \
    '  <recv response="401" auth="true"/>\n' + REQ.format(
    method="REGISTER", ruri="pbx.test", cseq=2,
    extra=CONTACT + "      [authentication username=1001 password=pw1001]\n") + \
    '  <recv response="200"/>\n</scenario>\n'

# Never skip for a missing tool: scripts/test installs sip-tester, so its absence is a failure.
if SIPP is None:
    raise RuntimeError("sipp not found: run scripts/test, which installs Debian's sip-tester")


def free_port(kind: int) -> int:
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run_sipp(tmp: Path, xml: str, port: int, transport: str, calls: int, rate: int = 50):
    scen = tmp / f"scen-{transport}.xml"
    scen.write_text(xml)
    kind = socket.SOCK_STREAM if transport == "t1" else socket.SOCK_DGRAM
    cmd = [SIPP, f"127.0.0.1:{port}", "-sf", str(scen), "-t", transport, "-m", str(calls),
           "-r", str(rate), "-i", "127.0.0.1", "-p", str(free_port(kind)), "-nostdin",
           # The digest uri must be the Request-URI (sip:pbx.test), not SIPp's default
           # sip:remote_ip:remote_port (RFC 2617 §3.2.2.5; the registrar checks it).
           "-auth_uri", "pbx.test",
           "-timeout", "20s", "-timeout_error", "-trace_err",
           "-error_file", str(tmp / f"err-{transport}.log"),
           "-trace_stat", "-stf", str(tmp / f"stat-{transport}.csv")]
    proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=60,
                          check=False)
    err_file = tmp / f"err-{transport}.log"
    errors = err_file.read_text() if err_file.exists() else ""
    return proc.returncode, proc.stdout[-3000:] + errors[-3000:]


@pytest.fixture
def md5_uas(tmp_path: Path):
    u = Uas(tmp_path, "--algorithms", "MD5")
    try:
        yield u
    finally:
        u.stop()


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_sipp_options(md5_uas, tmp_path, transport):
    port = md5_uas.udp if transport == "u1" else md5_uas.tcp
    rc, out = run_sipp(tmp_path, OPTIONS_XML, port, transport, calls=200, rate=200)
    assert rc == 0, out
    assert md5_uas.alive()


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_sipp_register_with_digest(md5_uas, tmp_path, transport):
    port = md5_uas.udp if transport == "u1" else md5_uas.tcp
    rc, out = run_sipp(tmp_path, REGISTER_XML, port, transport, calls=50, rate=50)
    assert rc == 0, out


def test_sipp_cannot_answer_sha256_first_challenge(tmp_path):
    u = Uas(tmp_path)  # default: SHA-256 then MD5 (RFC 8760 §2.4)
    try:
        rc, out = run_sipp(tmp_path, REGISTER_XML, u.udp, "u1", calls=1)
    finally:
        u.stop()
    assert rc != 0 and "must use MD5" in out
