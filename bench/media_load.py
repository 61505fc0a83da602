"""Media engine load benchmark: N bridged PCMU call pairs driven by a separate sender process.

    python bench/media_load.py --calls 200 --seconds 20
    python bench/media_load.py --calls 500 --seconds 20 --max-late 100
    python bench/media_load.py --calls 200 --seconds 20 --record-pct 50  # stereo party recordings

Prints engine CPU %, late ticks %, mean/max tick time and per-call CPU cost; exits 1 if the late
tick share exceeds --max-late percent (default 1 %).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.media.client import MediaClient


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process from /proc (clock ticks -> seconds)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sender(ports: list[int], seconds: float) -> None:
    """Send one 160-octet PCMU packet per port every 20 ms; drain what comes back."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(4)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    payload = bytes((0x80 + (i % 64)) for i in range(160))  # some non-silent audio
    hdr = struct.Struct("!BBHII")
    start = time.monotonic()
    tick = 0
    while time.monotonic() - start < seconds:
        for i, port in enumerate(ports):
            pkt = hdr.pack(0x80, 0, tick & 0xFFFF, 160 * tick, 1000 + i) + payload
            try:
                socks[i % 4].sendto(pkt, ("127.0.0.1", port))
            except BlockingIOError:
                pass
        for s in socks:
            try:
                while True:
                    s.recv(2048)
            except BlockingIOError:
                pass
        tick += 1
        delay = start + 0.02 * tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    print(json.dumps({"sender_ticks": tick}), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--max-late", type=float, default=1.0, help="percent of late ticks allowed")
    ap.add_argument("--record-pct", type=float, default=0.0,
                    help="percent of calls recorded (stereo record_parties, to a temporary dir)")
    ap.add_argument("--sender", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.sender:
        sender(json.loads(args.sender), args.seconds)
        return 0

    n = args.calls
    n_rec = round(n * args.record_pct / 100.0)
    rec_dir = tempfile.TemporaryDirectory(prefix="plateau-bench-")
    client = MediaClient.start("127.0.0.1", 20000, 20000 + 4 * n + 8, rtp_timeout_s=3600)
    try:
        t0 = time.perf_counter()
        ports = []
        for i in range(n):
            for side in ("a", "b"):
                leg = f"c{i}{side}"
                ports.append(client.create_leg(leg))
                client.configure_leg(leg, ("127.0.0.1", 9), "PCMU", 0, 101)
            client.bridge(f"br{i}", [f"c{i}a", f"c{i}b"])
            if i < n_rec:  # recorded legs leave the two-party relay for the 16 kHz mix
                client.record_parties(f"{rec_dir.name}/c{i}.wav", [f"c{i}a", f"c{i}b"], True)
        setup_us = (time.perf_counter() - t0) / n * 1e6
        proc = subprocess.Popen([sys.executable, __file__, "--seconds", str(args.seconds + 2),
                                 "--sender", json.dumps(ports)], stdout=subprocess.PIPE)
        time.sleep(2.0)  # warm-up: latching, jitter buffers filling
        s0, c0, w0 = client.engine_stats(), cpu_seconds(client.pid), time.monotonic()
        time.sleep(args.seconds)
        s1, c1, w1 = client.engine_stats(), cpu_seconds(client.pid), time.monotonic()
        sample = client.leg_stats("c0a")
        proc.wait()
    finally:
        client.close()  # closes the recordings too
        rec_dir.cleanup()
    ticks = s1["ticks"] - s0["ticks"]
    late = s1["late_ticks"] - s0["late_ticks"] + s1["skipped_ticks"] - s0["skipped_ticks"]
    cpu_pct = 100.0 * (c1 - c0) / (w1 - w0)
    late_pct = 100.0 * late / max(round((w1 - w0) / 0.02), 1)  # share of the frames due
    result = {
        "calls": n, "legs": 2 * n, "recorded_calls": n_rec, "seconds": round(w1 - w0, 1), "ticks": ticks,
        "expected_ticks": round((w1 - w0) / 0.02), "late_ticks": late,
        "late_pct": round(late_pct, 3), "engine_cpu_pct": round(cpu_pct, 1),
        "cpu_ms_per_call_per_s": round(10.0 * cpu_pct / n, 3),
        "mean_tick_ms": round(s1["mean_tick_ms"], 3), "max_tick_ms": round(s1["max_tick_ms"], 3),
        "setup_us_per_call": round(setup_us, 1),
        "sample_leg": {k: sample[k] for k in ("packets_in", "packets_out", "lost", "jitter_ms",
                                              "lost_frames", "late_packets")},
    }
    print(json.dumps(result, indent=2))
    return 1 if late_pct > args.max_late else 0


if __name__ == "__main__":
    sys.exit(main())
