"""Requests per second of the control API on a simple GET, served as the engine serves it.

    .venv/bin/python bench/api_load.py [--clients 4] [--seconds 5] [--path /v1/status] [--min-rps 0]

Starts ControlApiServer on 127.0.0.1 with a small facade whose ``status()`` answers from a
dict, and hands facade calls to a one-thread executor standing in for the SIP event loop
(``call_in_loop``, as in the engine). ``--clients`` threads then send authorised GETs, one
connection per request (the API answers HTTP/1.0 and closes), for ``--seconds`` after a
one-second warm-up. Prints requests/s and the median and 99th-percentile latency; exits 1 when
a request fails or the rate is below ``--min-rps``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from appliance.api.server import ControlApiServer  # noqa: E402

TOKEN = "bench-token-" + "x" * 32


class StatusFacade:
    """The part of the engine facade a status GET reaches."""

    def status(self) -> dict[str, Any]:
        return {"version": "bench", "calls": 0, "registrations": 0, "uptime_s": 1.0}


def _client(port: int, path: str, until: float, warm_until: float, stop: threading.Event) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    headers = {"Authorization": f"Bearer {TOKEN}"}
    while not stop.is_set():
        start = time.perf_counter()
        if start >= until:
            break
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            resp.read()
            ok = resp.status == 200
        except OSError:
            ok = False
        finally:
            conn.close()
        if start >= warm_until:
            latencies.append(time.perf_counter() - start)
            errors += 0 if ok else 1
    return latencies, errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--path", default="/v1/status")
    parser.add_argument("--min-rps", type=float, default=0.0)
    args = parser.parse_args()

    loop = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sip-loop")
    server = ControlApiServer("127.0.0.1", 0, TOKEN, StatusFacade(),  # type: ignore[arg-type]
                              lambda fn, *a: loop.submit(fn, *a).result())
    server.start()
    stop = threading.Event()
    try:
        warm_until = time.perf_counter() + 1.0
        until = warm_until + args.seconds
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.clients) as pool:
            runs = list(pool.map(lambda _: _client(server.port, args.path, until, warm_until, stop),
                                 range(args.clients)))
    finally:
        stop.set()
        server.stop()
        loop.shutdown(wait=True)
    latencies = sorted(lat for run, _ in runs for lat in run)
    errors = sum(err for _, err in runs)
    rps = len(latencies) / args.seconds
    p99 = latencies[int(0.99 * (len(latencies) - 1))] if latencies else 0.0
    median = statistics.median(latencies) if latencies else 0.0
    print(f"GET {args.path}: {rps:.0f} requests/s with {args.clients} clients over {args.seconds:.0f} s, "
          f"median {median * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms, {errors} errors")
    if errors or rps < args.min_rps:
        print(f"FAIL: {errors} errors, {rps:.0f} requests/s (at least {args.min_rps:.0f} asked)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
