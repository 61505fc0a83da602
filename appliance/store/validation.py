"""Field-level validation of configuration records, by the models of appliance/schema/records.py.

Every check raises RecordInvalid (a ConfigError) listing every field error at once, each message
starting with ``<where>.<field>:`` so an administrator can find the offending item
("extension.number: '10a1' is not 2-8 digits"). Cross-record checks (references between
sections, uniqueness) are done by ``config_yaml.import_config`` and by foreign keys in the
database. The rules themselves live in the models (docs/ARCHITECTURE.md, "Validation").
"""

from __future__ import annotations

import types
import typing
from typing import Any

from appliance.schema.errors import FieldError, RecordInvalid
from appliance.schema.records import (
    AGENT_ID_RE,
    CALLER_ID_RE,
    DESTINATION_HELP,
    DESTINATION_RE,
    DIAL_STRING_RE,
    DID_RE,
    DTMF_KEY_RE,
    EXTENSION_RE,
    HOSTNAME_RE,
    IPV6_RE,
    IVR_PREFIX,
    MAX_TEXT_LENGTH,
    MIN_SECRET_LENGTH,
    NAME_RE,
    PIN_RE,
    QUEUE_PREFIX,
    VOICEMAIL_PREFIX,
    AgentRecord,
    ExtensionRecord,
    InboundRouteRecord,
    OutboundRouteRecord,
    QueueRecord,
    TrunkRecord,
    as_fields,
    host,
)
from appliance.schema.settings import setting_errors
from appliance.schema.types import CHECKS, Record, record
from appliance.store.models import AgentConfig, Extension, InboundRoute, OutboundRoute, QueueConfig, Trunk

__all__ = [
    "AGENT_ID_RE", "CALLER_ID_RE", "DESTINATION_HELP", "DESTINATION_RE", "DIAL_STRING_RE", "DID_RE",
    "DTMF_KEY_RE", "EXTENSION_RE", "HOSTNAME_RE", "IPV6_RE", "IVR_PREFIX", "MAX_TEXT_LENGTH",
    "MIN_SECRET_LENGTH", "NAME_RE", "PIN_RE", "QUEUE_PREFIX", "VOICEMAIL_PREFIX", "check_agent",
    "check_extension", "check_host", "check_inbound_route", "check_outbound_route", "check_queue",
    "check_record_types", "check_setting", "check_trunk", "check_type",
]


def check_type(value: Any, hint: Any, where: str, field: str) -> None:
    """Raise ConfigError unless ``value`` fits the type ``hint`` of a record field.

    Supported hints: str, int, float, bool, list[str] and ``X | None``, checked by the field
    types of appliance/schema/types.py (a bool is not an int, a number is not a str).
    """
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        if value is None and type(None) in args:
            return
        inner = [a for a in args if a is not type(None)]
        check_type(value, inner[0], where, field)
        return
    if typing.get_origin(hint) is list:
        if not isinstance(value, list):
            raise RecordInvalid([FieldError((where, field), f"must be a list, got {type(value).__name__}")])
        for i, item in enumerate(value):
            check_type(item, args[0], where, f"{field}[{i}]")
        return
    check = CHECKS.get(hint)
    if check is None:
        raise TypeError(f"unsupported field type {hint!r} for {where}.{field}")
    try:
        check(value)
    except ValueError as exc:
        raise RecordInvalid([FieldError((where, field), str(exc))]) from None


def check_record_types(record_: Any, where: str) -> None:
    """Check every field of a dataclass instance against its annotation."""
    hints = typing.get_type_hints(type(record_))
    for name, value in as_fields(record_).items():
        check_type(value, hints[name], where, name)


def check_host(value: str, where: str, field: str) -> None:
    """Raise ConfigError unless ``value`` is a host name, IPv4 or IPv6 literal."""
    try:
        host(value)
    except ValueError as exc:
        raise RecordInvalid([FieldError((where, field), str(exc))]) from None


def _check(model: type[Record], obj: Any, where: str) -> None:
    record(model, as_fields(obj), (where,))


def check_extension(ext: Extension, where: str = "extension") -> None:
    """Validate one extension's fields (not its references to routes)."""
    _check(ExtensionRecord, ext, where)


def check_trunk(trunk: Trunk, where: str = "trunk") -> None:
    """Validate one trunk's fields."""
    _check(TrunkRecord, trunk, where)


def check_inbound_route(route: InboundRoute, where: str = "inbound_route") -> None:
    """Validate one inbound route's fields (not that its destination exists)."""
    _check(InboundRouteRecord, route, where)


def check_outbound_route(route: OutboundRoute, where: str = "outbound_route") -> None:
    """Validate one outbound route's fields (not that its trunk exists)."""
    _check(OutboundRouteRecord, route, where)


def check_agent(agent: AgentConfig, where: str = "agent") -> None:
    """Validate one agent's fields."""
    _check(AgentRecord, agent, where)


def check_queue(queue: QueueConfig, where: str = "queue") -> None:
    """Validate one queue's fields (not that its members and overflow exist)."""
    _check(QueueRecord, queue, where)


def check_setting(name: str, value: str, where: str = "settings") -> None:
    """Validate one setting name and value (its typed value too, when the setting is typed)."""
    errors = setting_errors(name, value, where)
    if errors:
        raise RecordInvalid(errors)




