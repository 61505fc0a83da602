"""The site's SIP front door in `scripts/cluster`: the one place the local cluster starts Kamailio.

Until the Kamailio launcher (its configuration and process, issue 14 item 2) is on this branch,
`start` starts nothing and the cluster's phones register to an engine directly.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

MISSING = "the Kamailio launcher is not in this tree yet"

Address = tuple[str, int]


def missing() -> str | None:
    """What must be installed before the front door can start (None: nothing)."""
    return None


def engine_args(front: Address) -> list[str]:
    """Extra `plateau run` arguments for an engine behind the front door at FRONT."""
    return []


def start(work: Path, listen: Address, engines: list[Address]) -> subprocess.Popen[bytes] | None:
    """Start Kamailio on LISTEN dispatching to ENGINES (state and log under WORK); None: not available."""
    return None
