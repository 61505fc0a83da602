"""Provisioning file: the whole configuration as YAML, exported and imported.

Import validates everything before touching the database (every record by its model in
appliance/schema/records.py, every error at once), then replaces the
configuration in one transaction, so a bad file changes nothing. Unknown and
duplicate keys are errors: a typo must not pass silently.

Outbound campaigns are configuration too (their settings, run state included), but their
prospect lists, leads and dial attempts are data: an import keeps the leads of every campaign
it keeps, and refuses to drop a campaign that still has leads rather than delete them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

# The module, not its names (see appliance/store/dialer.py: an import cycle through appliance.store).
from appliance.dialer import campaign as cmp
from appliance.schema.campaigns import CampaignRecord
from appliance.schema.errors import FieldError, RecordInvalid
from appliance.schema.records import (
    IVR_PREFIX,
    QUEUE_PREFIX,
    VOICEMAIL_PREFIX,
    AgentRecord,
    ExtensionRecord,
    InboundRouteRecord,
    OutboundRouteRecord,
    QueueRecord,
    TrunkRecord,
)
from appliance.schema.settings import setting_errors
from appliance.schema.types import Record, record
from appliance.store import acd
from appliance.store import dialer as dstore
from appliance.store.db import Store
from appliance.store.errors import ConfigError
from appliance.store.models import AgentConfig, Extension, InboundRoute, OutboundRoute, QueueConfig, Trunk

FORMAT_VERSION = 1
MAX_CONFIG_BYTES = 4 * 1024 * 1024
_TOP_LEVEL = ("version", "settings", "extensions", "trunks", "inbound_routes", "outbound_routes", "agents",
              "queues", "campaigns")


@dataclass
class ConfigData:
    """A parsed and fully validated configuration, ready to apply."""

    extensions: list[Extension] = field(default_factory=list)
    trunks: list[Trunk] = field(default_factory=list)
    inbound_routes: list[InboundRoute] = field(default_factory=list)
    outbound_routes: list[OutboundRoute] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)
    agents: list[AgentConfig] = field(default_factory=list)
    queues: list[QueueConfig] = field(default_factory=list)
    campaigns: list[cmp.CampaignConfig] = field(default_factory=list)


@dataclass
class ImportReport:
    """What an import changed: counts per section and the numbers that disappeared."""

    extensions: int
    trunks: int
    inbound_routes: int
    outbound_routes: int
    settings: int
    agents: int = 0
    queues: int = 0
    added_extensions: list[str] = field(default_factory=list)
    removed_extensions: list[str] = field(default_factory=list)
    campaigns: int = 0
    removed_campaigns: list[str] = field(default_factory=list)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (PyYAML keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _value_node in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            try:
                hash(key)
            except TypeError:  # "? [a, b]" or "? {a: b}": a complex key (found by fuzz/config_import)
                raise ConfigError(f"line {key_node.start_mark.line + 1}: a key must be a plain value") from None
            if key in seen:
                raise ConfigError(
                    f"line {key_node.start_mark.line + 1}: key {key!r} appears twice"
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _section(doc: dict[str, Any], name: str, errors: list[FieldError]) -> list[Any]:
    raw = doc.get(name)
    if raw is None:
        return []
    if not isinstance(raw, list):
        errors.append(FieldError((name,), f"must be a list, got {type(raw).__name__}"))
        return []
    return raw


def _records(doc: dict[str, Any], name: str, cls: type, model: type[Record], errors: list[FieldError]) -> list[Any]:
    """Every record of list section ``name``, each checked by its model as ``name[i]``; the errors
    of every record go to ``errors`` (an import reports them all at once)."""
    items = []
    for i, raw in enumerate(_section(doc, name, errors)):
        try:
            record(model, raw, (name, i))
        except RecordInvalid as exc:
            errors.extend(exc.errors)
            continue
        items.append(cls(**raw))
    return items


def _unique(items: list[Any], key: str, section: str, errors: list[FieldError]) -> dict[str, int]:
    """Map key value -> index; a value used twice is an error at its second use."""
    index: dict[str, int] = {}
    for i, item in enumerate(items):
        value = getattr(item, key)
        if value in index:
            errors.append(FieldError((section, i, key), f"{value!r} is already used by {section}[{index[value]}]"))
            continue
        index[value] = i
    return index


def _load(text: str) -> dict[str, Any]:
    """The YAML document as a mapping, its sections and version checked."""
    if len(text.encode("utf-8", errors="replace")) > MAX_CONFIG_BYTES:
        raise ConfigError(f"configuration is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        doc = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except RecursionError:
        raise ConfigError("not valid YAML: nested too deeply") from None
    except (ValueError, yaml.YAMLError) as exc:
        # PyYAML's timestamp constructor raises ValueError for an impossible date (2026-02-30).
        raise ConfigError(f"not valid YAML: {exc}") from None
    if doc is None:
        # An empty file would silently delete every extension: refuse it.
        raise ConfigError("configuration is empty (to clear a section, write e.g. 'extensions: []')")
    if not isinstance(doc, dict):
        raise ConfigError(f"configuration must be a mapping, got {type(doc).__name__}")
    for key in doc:
        if key not in _TOP_LEVEL:
            raise ConfigError(f"unknown section {key!r} (known: {', '.join(_TOP_LEVEL)})")
    version = doc.get("version", FORMAT_VERSION)
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise ConfigError(f"version: {version!r} is not supported (expected {FORMAT_VERSION})")
    return doc


def parse_config(text: str, flows: Iterable[str] | None = None) -> ConfigData:
    """Parse and validate a provisioning file.

    Every record is checked by its model (appliance/schema/records.py); RecordInvalid lists
    every field error of every record at once, then every broken reference between records.
    `flows` are the site's published IVR flows: an ``ivr:<flow>`` destination must be one of them
    (None: not checked, the flows are not known to the caller).
    """
    doc = _load(text)
    data = ConfigData()
    errors: list[FieldError] = []
    raw_settings = doc.get("settings") or {}
    if not isinstance(raw_settings, dict):
        raise ConfigError(f"settings: must be a mapping, got {type(raw_settings).__name__}")
    for name, value in raw_settings.items():
        # The typed check the settings page applies too (one definition: schema/settings.py).
        problems = setting_errors(name, value, typed=True)
        errors.extend(problems)
        if not problems:
            data.settings[name] = value

    data.trunks = _records(doc, "trunks", Trunk, TrunkRecord, errors)
    data.outbound_routes = _records(doc, "outbound_routes", OutboundRoute, OutboundRouteRecord, errors)
    data.extensions = _records(doc, "extensions", Extension, ExtensionRecord, errors)
    data.inbound_routes = _records(doc, "inbound_routes", InboundRoute, InboundRouteRecord, errors)
    data.agents = _records(doc, "agents", AgentConfig, AgentRecord, errors)
    data.queues = _records(doc, "queues", QueueConfig, QueueRecord, errors)
    data.campaigns = _records(doc, "campaigns", cmp.CampaignConfig, CampaignRecord, errors)
    if errors:
        raise RecordInvalid(errors)
    _check_references(data, errors, None if flows is None else set(flows))
    if errors:
        raise RecordInvalid(errors)
    return data


def _check_references(data: ConfigData, errors: list[FieldError], flows: set[str] | None) -> None:
    """Names unique within a section, and every reference to another record defined."""
    trunks = _unique(data.trunks, "name", "trunks", errors)
    routes = _unique(data.outbound_routes, "name", "outbound_routes", errors)
    numbers = _unique(data.extensions, "number", "extensions", errors)
    _unique(data.inbound_routes, "did", "inbound_routes", errors)
    agent_ids = _unique(data.agents, "agent_id", "agents", errors)
    queue_names = _unique(data.queues, "name", "queues", errors)
    # Indexes among the queues that have a number, as the import has always reported them.
    _unique([q for q in data.queues if q.number], "number", "queues", errors)
    _unique(data.campaigns, "name", "campaigns", errors)
    if errors:
        # A name used twice makes every reference to it ambiguous: report those alone.
        return
    for i, route in enumerate(data.outbound_routes):
        if route.trunk not in trunks:
            errors.append(FieldError(("outbound_routes", i, "trunk"), f"trunk {route.trunk!r} is not defined"))
    for i, ext in enumerate(data.extensions):
        for j, name in enumerate(ext.dial_permissions):
            if name not in routes:
                errors.append(FieldError(("extensions", i, "dial_permissions", j),
                                         f"outbound route {name!r} is not defined"))
    for i, inbound in enumerate(data.inbound_routes):
        _check_destination(inbound.destination, ("inbound_routes", i, "destination"), numbers, queue_names, flows,
                           errors)
    for i, queue in enumerate(data.queues):
        for j, member in enumerate(queue.members):
            if member not in agent_ids:
                errors.append(FieldError(("queues", i, "members", j), f"agent {member!r} is not defined"))
        if queue.overflow is not None:
            _check_destination(queue.overflow, ("queues", i, "overflow"), numbers, queue_names, flows, errors)
        if queue.number in numbers:
            errors.append(FieldError(("queues", i, "number"), f"{queue.number} is already extension "
                                     f"extensions[{numbers[queue.number]}]"))
    for i, campaign in enumerate(data.campaigns):
        if campaign.queue not in queue_names:
            errors.append(FieldError(("campaigns", i, "queue"), f"queue {campaign.queue!r} is not defined"))
        if campaign.trunk not in trunks:
            errors.append(FieldError(("campaigns", i, "trunk"), f"trunk {campaign.trunk!r} is not defined"))


def _check_destination(dest: str, loc: tuple[str | int, ...], numbers: dict[str, int], queues: dict[str, int],
                       flows: set[str] | None, errors: list[FieldError]) -> None:
    if dest.startswith(IVR_PREFIX):
        flow = dest[len(IVR_PREFIX):]
        if flows is not None and flow not in flows:
            errors.append(FieldError(loc, f"IVR flow {flow!r} is not published (no flows/{flow}.yaml)"))
        return
    if dest.startswith(QUEUE_PREFIX):
        if dest[len(QUEUE_PREFIX):] not in queues:
            errors.append(FieldError(loc, f"queue {dest[len(QUEUE_PREFIX):]!r} is not defined"))
        return
    number = dest.removeprefix(VOICEMAIL_PREFIX)
    if number not in numbers:
        errors.append(FieldError(loc, f"extension {number!r} is not defined"))


def removal_errors(store: Store, data: ConfigData) -> list[str]:
    """Why importing ``data`` into ``store`` would lose data: campaigns it drops that still have leads.

    A campaign's leads are data, not configuration; deleting the campaign would delete them, so
    the admin must do it on purpose (web UI) or keep the campaign in the file.
    """
    keep = {c.name for c in data.campaigns}
    errors = []
    for campaign in dstore.campaigns(store):
        if campaign.name in keep:
            continue
        leads = sum(dstore.lead_counts(store, campaign.name).values())
        if leads:
            errors.append(f"campaigns: campaign {campaign.name!r} has {leads} lead{'s' if leads != 1 else ''}: "
                          "delete it in the web UI first or keep it in the file")
    return errors


def import_config(store: Store, text: str, flows: Iterable[str] | None = None) -> ImportReport:
    """Validate ``text`` completely, then replace the whole configuration atomically.

    `flows`: the published IVR flows an ``ivr:`` destination may name (parse_config).

    Campaigns are upserted (their lists and leads stay) and those missing from the file are
    deleted; ConfigError, with nothing changed, if one of those still has leads.
    """
    data = parse_config(text, flows)
    with store.transaction():
        errors = removal_errors(store, data)
        if errors:
            raise ConfigError("; ".join(errors))
        before = {e.number for e in store.extensions()}
        # Inbound routes last: they may send calls to queues.
        store.replace_config(data.extensions, data.trunks, [], data.outbound_routes, data.settings)
        acd.replace_acd(store, data.agents, data.queues)
        for inbound in data.inbound_routes:
            store.put_inbound_route(inbound)
        # Campaigns name queues and trunks without a foreign key: put them once those are in.
        keep = {c.name for c in data.campaigns}
        removed = [c.name for c in dstore.campaigns(store) if c.name not in keep]
        for name in removed:
            dstore.delete_campaign(store, name)
        for campaign in data.campaigns:
            dstore.put_campaign(store, campaign)
    after = {e.number for e in data.extensions}
    return ImportReport(
        extensions=len(data.extensions),
        trunks=len(data.trunks),
        inbound_routes=len(data.inbound_routes),
        outbound_routes=len(data.outbound_routes),
        settings=len(data.settings),
        agents=len(data.agents),
        queues=len(data.queues),
        added_extensions=sorted(after - before),
        removed_extensions=sorted(before - after),
        campaigns=len(data.campaigns),
        removed_campaigns=removed,
    )


def export_config(store: Store) -> str:
    """Return the whole configuration as YAML (stable order, secrets included)."""
    with store.transaction(read_only=True):  # one consistent snapshot
        doc: dict[str, Any] = {
            "version": FORMAT_VERSION,
            "settings": store.settings(),
            "extensions": [dataclasses.asdict(e) for e in store.extensions()],
            "trunks": [dataclasses.asdict(t) for t in store.trunks()],
            "inbound_routes": [dataclasses.asdict(r) for r in store.inbound_routes()],
            "outbound_routes": [dataclasses.asdict(r) for r in store.outbound_routes()],
            "agents": [dataclasses.asdict(a) for a in acd.agents(store)],
            "queues": [dataclasses.asdict(q) for q in acd.queues(store)],
        }
        # Only when there are some, so files of sites without campaigns are unchanged; an
        # absent section means no campaigns, exactly like an empty one.
        campaigns = sorted(dstore.campaigns(store), key=lambda c: c.name)
        if campaigns:
            doc["campaigns"] = [dataclasses.asdict(c) for c in campaigns]
    header = (
        "# Plateau configuration (provisioning file). It contains SIP secrets:\n"
        "# keep it private. Import replaces the whole configuration.\n"
    )
    return header + yaml.safe_dump(
        doc, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100
    )
