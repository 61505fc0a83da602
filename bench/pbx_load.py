"""Concurrent anchored G.711 calls with RTP through the Plateau engine, held steady.

    python bench/pbx_load.py [--calls 200] [--rate 20] [--hold 60] [--measure 30]

A SIPp UAS registered as 1002 and a SIPp UAC calling as 1001 both stream looping PCMU
(SIPp rtp_stream, 50 packets/s per direction) for the whole call; every call is anchored in
the engine's media process, so it carries 2 legs x 50 pps in and out. Once all calls are up,
the script measures for --measure seconds: engine CPU % (SIP process + media process, from
/proc), media ticks late, frames lost (a receiving leg with nothing to play), packets in/out.
Exits 1 when fewer calls than asked were up, or late ticks or lost frames exceed --max-late %.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
sys.modules.pop("tests", None)  # sippy installs a stray top-level `tests`; use ours

import numpy as np

from appliance.media.g711 import ulaw_encode
from tests.peers.engine import Engine, free_port_range
from tests.peers.sipp import SippProcess, auth_row

CLK_TCK = os.sysconf("SC_CLK_TCK")


def write_ulaw_wav(path: Path, freq: float = 1000.0, seconds: float = 2.0) -> Path:
    """A mu-law WAV (format tag 7) that SIPp's rtp_stream sends as payload type 0."""
    t = np.arange(int(8000 * seconds)) / 8000
    pcm = (8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    data = ulaw_encode(pcm).tobytes()
    with open(path, "wb") as f:
        fmt = (7).to_bytes(2, "little") + (1).to_bytes(2, "little") + (8000).to_bytes(4, "little") \
            + (8000).to_bytes(4, "little") + (1).to_bytes(2, "little") + (8).to_bytes(2, "little")
        body = b"WAVE" + b"fmt " + len(fmt).to_bytes(4, "little") + fmt \
            + b"data" + len(data).to_bytes(4, "little") + data
        f.write(b"RIFF" + len(body).to_bytes(4, "little") + body)
    return path


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except OSError:
                continue
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--rate", type=float, default=20.0, help="call set-ups per second while ramping up")
    ap.add_argument("--hold", type=float, default=60.0, help="how long each call lasts once all are up")
    ap.add_argument("--measure", type=float, default=30.0, help="measurement window inside the hold")
    ap.add_argument("--max-late", type=float, default=1.0, help="allowed late ticks / lost frames, %%")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="pbx_load-"))
    work.mkdir(parents=True, exist_ok=True)
    ramp = args.calls / args.rate
    call_ms = int((ramp + args.hold) * 1000)

    eng = Engine(work / "engine", extra_args=["--digest-algorithms", "MD5,SHA-256"])
    eng.rtp_ports = free_port_range(max(400, args.calls * 4 + 100))
    eng.start()
    try:
        media_pids = children(eng.pid or 0)
        pids = [eng.pid or 0, *media_pids]
        registrar = f"{eng.sip_ip}:{eng.sip_port}"
        (work / "uas").mkdir(exist_ok=True)
        (work / "uac").mkdir(exist_ok=True)
        write_ulaw_wav(work / "uas" / "tone.ulaw.wav")
        write_ulaw_wav(work / "uac" / "tone.ulaw.wav", freq=2000.0)
        with SippProcess("load_uas_rtp", workdir=work / "uas", register=("1002", eng.secret(1002), registrar),
                         extra_args=["-max_recv_loops", "10000", "-mp", str(free_port_range(4)[0])]), \
                SippProcess("load_uac_rtp", target=registrar, workdir=work / "uac",
                            inject=[auth_row("1001", "secret1001")],
                            calls=args.calls,
                            extra_args=["-s", "1002", "-r", str(args.rate), "-l", str(args.calls),
                                        "-d", str(call_ms), "-max_recv_loops", "10000",
                                        "-mp", str(free_port_range(4)[0])]):
            deadline = time.monotonic() + ramp + 30
            up = 0
            while time.monotonic() < deadline:
                _, status = eng.api("GET", "/v1/status")
                up = sum(1 for c in eng.api("GET", "/v1/calls")[1] if c["state"] == "up")
                if up >= args.calls:
                    break
                time.sleep(1.0)
            time.sleep(2.0)  # let jitter buffers settle
            _, s0 = eng.api("GET", "/v1/status")
            c0, m_c0, t0 = cpu_ticks(pids), cpu_ticks(media_pids), time.monotonic()
            time.sleep(args.measure)
            _, s1 = eng.api("GET", "/v1/status")
            c1, m_c1, t1 = cpu_ticks(pids), cpu_ticks(media_pids), time.monotonic()
            up_end = s1["calls"]
    finally:
        eng.stop()
    m0, m1 = s0["media"], s1["media"]
    ticks = max(1, m1["ticks"] - m0["ticks"])
    late = (m1["late_ticks"] - m0["late_ticks"]) + (m1["skipped_ticks"] - m0["skipped_ticks"])
    frames = max(1, ticks * m1["legs"])
    lost = m1["lost_frames"] - m0["lost_frames"]
    pin = m1["packets_in"] - m0["packets_in"]
    pout = m1["packets_out"] - m0["packets_out"]
    cpu = 100.0 * (c1 - c0) / CLK_TCK / (t1 - t0)
    media_cpu = 100.0 * (m_c1 - m_c0) / CLK_TCK / (t1 - t0)
    late_pct, lost_pct = 100.0 * late / ticks, 100.0 * lost / frames
    print(f"calls up {up} (asked {args.calls}), still up at the end of the window {up_end}")
    print(f"window {t1 - t0:.1f} s: engine CPU {cpu:.0f} % (SIP + media processes, 200 % = both cores; "
          f"media process {media_cpu:.0f} %)")
    print(f"media: {m1['legs']} legs, ticks {ticks}, late/skipped {late} ({late_pct:.2f} %), "
          f"mean tick {m1['mean_tick_ms']:.1f} ms, max tick {m1['max_tick_ms']:.1f} ms")
    print(f"frames lost {lost} of {frames} ({lost_pct:.2f} %); packets in {pin / (t1 - t0):.0f}/s, "
          f"out {pout / (t1 - t0):.0f}/s")
    for kind, t in sorted(s1.get("storage", {}).get("write_ms", {}).items()):  # what the loop waits on disk
        what = "commits fsynced off the loop, commit-to-fsync window" if kind == "wal_sync" else \
            "writes in the SIP loop, time in the loop"
        print(f"store {kind}: {t['count']} {what} mean {t['mean_ms']:.3f} ms, max {t['max_ms']:.3f} ms")
    ok = up >= args.calls and late_pct <= args.max_late and lost_pct <= args.max_late
    print("PASS" if ok else "FAIL", f"(target: {args.calls} calls, <= {args.max_late} % late or lost)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
