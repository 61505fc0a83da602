"""Stopping a child's process group: SIGTERM so it can finish its work, then SIGKILL; and the /proc process table."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path


def stop_group(proc: subprocess.Popen[bytes], term_wait: float = 3.0, kill_wait: float = 5.0) -> None:
    """End `proc`'s process group (started with start_new_session=True) and reap it; idempotent."""
    for sig, wait in ((signal.SIGTERM, term_wait), (signal.SIGKILL, kill_wait)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    proc.wait(timeout=5.0)


def process_table() -> dict[int, list[str]]:
    """Every live process's /proc/PID/stat fields after its name (proc(5): index 0 is field 3,
    the state; 1 the parent, 2 the process group, 11 and 12 utime and stime in clock ticks)."""
    table: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            # The name may hold spaces and parentheses: the fields start after its last ')'.
            table[int(entry)] = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we read
    return table
