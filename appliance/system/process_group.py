"""Stopping a child's process group: SIGTERM so it can finish its work, then SIGKILL."""
from __future__ import annotations

import os
import signal
import subprocess


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
