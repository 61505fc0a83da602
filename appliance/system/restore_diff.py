"""What a restore would change: configuration rows added, changed and removed, and the data rows.

Shown before a restore is confirmed (System > Backup, the report page). Both sides are read the
same way: the live configuration is exported and parsed as the archive's config.yaml is
(appliance/store/config_yaml.py), so a row that did not change compares equal field by field.
A changed row names its changed fields, never their values: secrets (SIP passwords, PINs) are
among them, and the page is no place to show them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from appliance.store import backups
from appliance.store.config_yaml import ConfigData, export_config, parse_config
from appliance.store.db import Store
from appliance.system.backup import RestorePlan

Change = Literal["added", "changed", "removed"]

# Each configuration section and the field that names its rows (the key an import matches on).
SECTIONS: dict[str, str] = {
    "extensions": "number", "trunks": "name", "inbound_routes": "did", "outbound_routes": "name",
    "agents": "agent_id", "queues": "name", "campaigns": "name",
}
LABELS: dict[str, str] = {
    "extensions": "extension", "trunks": "trunk", "inbound_routes": "inbound route",
    "outbound_routes": "outbound route", "agents": "agent", "queues": "queue", "campaigns": "campaign",
    "settings": "setting",
}


@dataclass(frozen=True)
class RowChange:
    section: str  # a key of SECTIONS, or "settings"
    key: str
    change: Change
    fields: tuple[str, ...] = ()  # for "changed": the fields that differ

    @property
    def label(self) -> str:
        return LABELS[self.section]


@dataclass(frozen=True)
class DataCount:
    table: str
    label: str
    now: int
    archive: int | None  # None: the archive has no database, or an older one without the table


@dataclass(frozen=True)
class RestoreDiff:
    changes: list[RowChange]
    data: list[DataCount]
    has_database: bool

    def count(self, change: Change) -> int:
        return sum(1 for c in self.changes if c.change == change)


def _rows(config: ConfigData, section: str) -> dict[str, dict[str, Any]]:
    key = SECTIONS[section]
    return {str(getattr(r, key)): dataclasses.asdict(r) for r in getattr(config, section)}


def config_diff(current: ConfigData, incoming: ConfigData) -> list[RowChange]:
    """Every row `incoming` adds, changes or removes relative to `current`, section by section."""
    out: list[RowChange] = []
    for section in SECTIONS:
        now, then = _rows(current, section), _rows(incoming, section)
        for key in sorted(then.keys() - now.keys()):
            out.append(RowChange(section, key, "added"))
        for key in sorted(now.keys() & then.keys()):
            fields = tuple(f for f in then[key] if then[key][f] != now[key].get(f))
            if fields:
                out.append(RowChange(section, key, "changed", fields))
        for key in sorted(now.keys() - then.keys()):
            out.append(RowChange(section, key, "removed"))
    a, b = current.settings, incoming.settings
    out += [RowChange("settings", k, "added") for k in sorted(b.keys() - a.keys())]
    out += [RowChange("settings", k, "changed", ("value",)) for k in sorted(a.keys() & b.keys()) if a[k] != b[k]]
    out += [RowChange("settings", k, "removed") for k in sorted(a.keys() - b.keys())]
    return out


def restore_diff(store: Store, plan: RestorePlan) -> RestoreDiff:
    """What restoring the checked `plan` over `store` changes."""
    changes = config_diff(parse_config(export_config(store)), plan.config)
    now = backups.data_counts(store)
    archived = plan.database_counts or {}
    data = [DataCount(t, label, now[t], archived.get(t)) for t, label in backups.DATA_TABLES.items()]
    return RestoreDiff(changes, data, plan.database_counts is not None)
