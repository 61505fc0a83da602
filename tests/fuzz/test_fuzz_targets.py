"""Each coverage-guided fuzz target (fuzz/) runs for a bounded time and must find no crash.

Every run starts from the checked-in corpus (fuzz/corpus/<target>/, which also holds the inputs
of crashes found before, so each is replayed first), then mutates for FUZZ_SECONDS (15 unless
set). A crash is an exception outside the target's contract or an input slower than 10 s;
the test fails with libFuzzer's report and the input, as bytes, to paste into a unit test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz import TARGETS

ROOT = Path(__file__).resolve().parents[2]
SECONDS = int(os.environ.get("FUZZ_SECONDS", "15"))
# A fixed seed: a slower machine then explores a prefix of the same mutations a faster one does,
# so a green run here stays green in CI; scripts/fuzz runs unseeded to find new things.
SEED = int(os.environ.get("FUZZ_SEED", "1"))


def test_every_target_module_is_listed() -> None:
    modules = {p.stem for p in (ROOT / "fuzz").glob("*.py")} - {"__init__", "harness", "media_rig", "sip_rig"}
    assert modules == set(TARGETS)
    for name in TARGETS:
        seeds = list((ROOT / "fuzz" / "corpus" / name).iterdir())
        assert seeds, f"{name} has no seed corpus"
        assert all(p.stat().st_size <= 16384 for p in seeds), f"{name}: keep seeds small"


@pytest.mark.parametrize("target", TARGETS)
def test_target_finds_no_crash(target: str, tmp_path: Path) -> None:
    work = tmp_path / "corpus"
    shutil.copytree(ROOT / "fuzz" / "corpus" / target, work)  # libFuzzer adds to its first dir
    cmd = [sys.executable, "-m", f"fuzz.{target}", str(work), f"-max_total_time={SECONDS}", f"-seed={SEED}",
           "-timeout=10", f"-artifact_prefix={tmp_path}/", "-print_final_stats=1"]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {**os.environ, "PLATEAU_FUZZ_TMP": str(scratch)}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=SECONDS + 120, env=env)
    log = proc.stderr.decode(errors="replace")
    crashes = [p for p in tmp_path.iterdir() if p.is_file()]  # the scratch and corpus are dirs
    found = "\n".join(f"{p.name}: {p.read_bytes()[:2000]!r}" for p in crashes)
    assert proc.returncode == 0 and not crashes, f"{target} crashed (rc {proc.returncode}):\n{log[-6000:]}\n{found}"
    assert "stat::number_of_executed_units" in log, log[-3000:]
