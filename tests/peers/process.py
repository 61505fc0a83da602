"""Stopping a peer's process group: SIGTERM so it can write its results, then SIGKILL.

The same as the appliance's own (appliance/system/process_group.py), kept at this path for the peers."""
from __future__ import annotations

from appliance.system.process_group import stop_group

__all__ = ["stop_group"]
