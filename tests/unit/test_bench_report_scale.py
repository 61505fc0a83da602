"""bench/report_scale.py at a tiny scale: it generates, rebuilds and reports, and its periods agree."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "report_scale.py"


def test_the_bench_runs_at_a_tiny_scale(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(BENCH), "--scale", "0.002", "--dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines()}
    assert lines["generated"].split()[1].replace(",", "").isdigit()
    offered = {p: int(lines[p].rsplit("offered", 1)[1].replace(",", "")) for p in ("week", "month", "quarter", "year")}
    assert 0 < offered["week"] < offered["month"] < offered["quarter"] < offered["year"]


def test_a_bad_scale_is_refused() -> None:
    done = subprocess.run([sys.executable, str(BENCH), "--scale", "2"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--scale" in done.stderr
