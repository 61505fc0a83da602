"""Waiting for a condition that another process or thread makes true."""
from __future__ import annotations

import time
from typing import Any


def wait_until(predicate: Any, timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll `predicate` every 50 ms; return its first truthy value, or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met in {timeout}s")
        time.sleep(0.05)
