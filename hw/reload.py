"""hardware.yaml and headsets.yaml reloaded while the engine runs (POST /v1/reload).

Two steps, so nothing is half-applied: `HardwareReload.read` reads and checks both files and
raises `ReloadRefused` (naming the file and the field) before anything changes; `apply` then
hands the new configuration to the running `HardwareManager` and `HeadsetSupervisor`, which
change only what differs (hw/manager.py, hw/headsets.py), or starts them when a file appeared
after the engine started. A file that was removed empties what it configured.

The engine owns how a manager or a supervisor is built (its PBX, media client, registrar
address); it passes those two constructors in, so this module needs nothing else of it.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hw import config as hwconfig
from hw.headset import HeadsetConfig
from hw.headsets import HeadsetsConfigError, HeadsetSupervisor
from hw.manager import HardwareManager

log = logging.getLogger("plateau.hw")
HARDWARE_FILE = "hardware.yaml"
HEADSETS_FILE = "headsets.yaml"


class ReloadRefused(ValueError):
    """A configuration file that does not parse; the running configuration is kept."""


@dataclass
class HardwareReload:
    """What a reload will apply, read and checked (see module docstring)."""

    hardware: hwconfig.HardwareConfig | None = None  # None: no file and nothing running
    headsets: list[HeadsetConfig] | None = None
    new_supervisor: HeadsetSupervisor | None = None  # headsets.yaml appeared: built, not started
    changes: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, data_dir: Path, manager: HardwareManager | None, supervisor: HeadsetSupervisor | None,
             open_headsets: Callable[[], HeadsetSupervisor]) -> HardwareReload:
        """Both files, checked; raises ReloadRefused and changes nothing when one does not parse."""
        plan = cls()
        hw_path = data_dir / HARDWARE_FILE
        if hw_path.exists() or manager is not None:
            try:
                plan.hardware = (hwconfig.load_hardware(hw_path) if hw_path.exists()
                                 else hwconfig.HardwareConfig())
            except (hwconfig.HardwareConfigError, OSError) as exc:
                raise ReloadRefused(f"{HARDWARE_FILE}: {exc}") from exc
        hs_path = data_dir / HEADSETS_FILE
        if supervisor is not None:
            try:
                plan.headsets = supervisor.read()
            except HeadsetsConfigError as exc:
                raise ReloadRefused(f"{HEADSETS_FILE}: {exc}") from exc
        elif hs_path.exists():
            fresh = open_headsets()  # checks the file; no process is started yet
            if fresh.error:
                raise ReloadRefused(f"{HEADSETS_FILE}: {fresh.error}")
            plan.new_supervisor = fresh
        return plan

    def apply(self, manager: HardwareManager | None, supervisor: HeadsetSupervisor | None,
              open_hardware: Callable[[], HardwareManager]
              ) -> tuple[HardwareManager | None, HeadsetSupervisor | None]:
        """Apply what `read` found (engine loop); returns the manager and supervisor now running."""
        if self.hardware is not None:
            if manager is None:
                manager = open_hardware().start()
                self.changes.append(f"{HARDWARE_FILE} started")
                log.info("%s appeared: hardware started", HARDWARE_FILE)
            else:
                self.changes += manager.apply(self.hardware)
        if self.new_supervisor is not None:
            supervisor = self.new_supervisor.start()
            self.changes.append(f"{HEADSETS_FILE} started")
            log.info("%s appeared: headsets started", HEADSETS_FILE)
        elif supervisor is not None and self.headsets is not None:
            self.changes += supervisor.apply(self.headsets)
        return manager, supervisor
