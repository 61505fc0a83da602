"""Field-level validation of configuration records.

Every check raises ConfigError whose message starts with ``<where>.<field>:`` so an
administrator can find the offending item ("extensions[3].number: '10a1' is not
2-8 digits"). Cross-record checks (references between sections, uniqueness) are
done by ``config_yaml.import_config`` and by foreign keys in the database.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import Any

from appliance.store.errors import ConfigError
from appliance.acd.skills import SkillError, parse_escalation, parse_skills, requirements_from_text
from appliance.acd.strategies import STRATEGIES
from appliance.store.models import (
    EXTENSION_RECORDING,
    RECORDING_MODES,
    TRANSPORTS,
    AgentConfig,
    Extension,
    InboundRoute,
    OutboundRoute,
    QueueConfig,
    Trunk,
)
from appliance.store.patterns import validate_pattern

EXTENSION_RE = re.compile(r"^[0-9]{2,8}$")
# A dialable number: digits with an optional leading '+' (E.164) or '*'/'#' codes.
DIAL_STRING_RE = re.compile(r"^\+?[0-9*#]{1,32}$")
CALLER_ID_RE = re.compile(r"^\+?[0-9]{1,20}$")
DID_RE = re.compile(r"^\+?[0-9]{1,20}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# RFC 1123 host name or IPv4 literal; IPv6 literal (without brackets) separately.
HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
IPV6_RE = re.compile(r"^[0-9A-Fa-f:.]{2,45}$")
# Digest secrets shorter than this are brute-forced quickly from the internet.
MIN_SECRET_LENGTH = 8
MAX_TEXT_LENGTH = 128


def _fail(where: str, field: str, message: str) -> ConfigError:
    return ConfigError(f"{where}.{field}: {message}")


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def check_type(value: Any, hint: Any, where: str, field: str) -> None:
    """Raise ConfigError unless ``value`` fits the type ``hint`` of a record field.

    Supported hints: str, int, float, bool, list[str] and ``X | None``. ``bool`` is
    not accepted for int (it is a subclass of int in Python, not in YAML), and a
    number is not accepted for str: YAML 1.1 reads ``0123`` as octal 83, so numbers
    must be quoted to keep their leading zeros.
    """
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        if value is None and type(None) in args:
            return
        inner = [a for a in args if a is not type(None)]
        check_type(value, inner[0], where, field)
        return
    if hint is str:
        if isinstance(value, str):
            return
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            raise _fail(where, field, f"must be a string, got number {value!r} "
                        f"(quote it in YAML: '{value}')")
        raise _fail(where, field, f"must be a string, got {_type_name(value)}")
    if hint is bool:
        if not isinstance(value, bool):
            raise _fail(where, field, f"must be true or false, got {value!r}")
        return
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(where, field, f"must be an integer, got {_type_name(value)} {value!r}")
        return
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(where, field, f"must be a number, got {_type_name(value)} {value!r}")
        return
    if typing.get_origin(hint) is list:
        if not isinstance(value, list):
            raise _fail(where, field, f"must be a list, got {_type_name(value)}")
        for i, item in enumerate(value):
            check_type(item, args[0], where, f"{field}[{i}]")
        return
    raise TypeError(f"unsupported field type {hint!r} for {where}.{field}")


def check_record_types(record: Any, where: str) -> None:
    """Check every field of a dataclass instance against its annotation."""
    hints = typing.get_type_hints(type(record))
    for f in dataclasses.fields(record):
        check_type(getattr(record, f.name), hints[f.name], where, f.name)


def _check_regex(value: str | None, regex: re.Pattern[str], where: str, field: str,
                 what: str) -> None:
    if value is not None and not regex.match(value):
        raise _fail(where, field, f"{value!r} is not {what}")


def _check_range(value: int, low: int, high: int, where: str, field: str) -> None:
    if not low <= value <= high:
        raise _fail(where, field, f"{value} is not in {low}..{high}")


def _check_text(value: str, where: str, field: str, *, required: bool) -> None:
    if required and not value.strip():
        raise _fail(where, field, "must not be empty")
    if len(value) > MAX_TEXT_LENGTH:
        raise _fail(where, field, f"is longer than {MAX_TEXT_LENGTH} characters")
    if any(ord(c) < 32 for c in value):
        raise _fail(where, field, "must not contain control characters")


def check_host(value: str, where: str, field: str) -> None:
    """Raise ConfigError unless ``value`` is a host name, IPv4 or IPv6 literal."""
    if HOSTNAME_RE.match(value):
        return
    if ":" in value and IPV6_RE.match(value):
        return
    raise _fail(where, field, f"{value!r} is not a host name or IP address")


def check_extension(ext: Extension, where: str = "extension") -> None:
    """Validate one extension's fields (not its references to routes)."""
    check_record_types(ext, where)
    _check_regex(ext.number, EXTENSION_RE, where, "number", "2-8 digits")
    _check_text(ext.name, where, "name", required=True)
    if len(ext.secret) < MIN_SECRET_LENGTH:
        raise _fail(where, "secret", f"must be at least {MIN_SECRET_LENGTH} characters")
    _check_text(ext.secret, where, "secret", required=True)
    for field in ("forward_always", "forward_busy", "forward_noanswer"):
        target = getattr(ext, field)
        _check_regex(target, DIAL_STRING_RE, where, field, "a dialable number")
        if target == ext.number:
            raise _fail(where, field, "forwards the extension to itself")
    _check_range(ext.noanswer_seconds, 1, 600, where, "noanswer_seconds")
    seen: set[str] = set()
    for i, route in enumerate(ext.dial_permissions):
        _check_regex(route, NAME_RE, where, f"dial_permissions[{i}]", "a route name")
        if route in seen:
            raise _fail(where, f"dial_permissions[{i}]", f"{route!r} is listed twice")
        seen.add(route)
    _check_regex(ext.external_caller_id, CALLER_ID_RE, where, "external_caller_id",
                 "a caller number (digits, optional leading +)")
    if ext.recording not in EXTENSION_RECORDING:
        raise _fail(where, "recording", f"{ext.recording!r} is not one of {', '.join(EXTENSION_RECORDING)}")


def check_trunk(trunk: Trunk, where: str = "trunk") -> None:
    """Validate one trunk's fields."""
    check_record_types(trunk, where)
    _check_regex(trunk.name, NAME_RE, where, "name",
                 "a name (letters, digits, '_', '.', '-', up to 64)")
    check_host(trunk.host, where, "host")
    _check_range(trunk.port, 1, 65535, where, "port")
    if trunk.transport not in TRANSPORTS:
        raise _fail(where, "transport", f"{trunk.transport!r} is not one of {', '.join(TRANSPORTS)}")
    for field in ("username", "secret"):
        value = getattr(trunk, field)
        if value is not None:
            _check_text(value, where, field, required=True)
    if trunk.register and (trunk.username is None or trunk.secret is None):
        raise _fail(where, "register", "registration needs username and secret")
    # RFC 3261 section 10.2.1: expiry is the client's choice; below 60 s carriers
    # answer 423 Interval Too Brief, above a day a lost binding goes unnoticed.
    _check_range(trunk.register_expires, 60, 86400, where, "register_expires")
    if trunk.from_domain is not None:
        check_host(trunk.from_domain, where, "from_domain")
    _check_regex(trunk.caller_id, CALLER_ID_RE, where, "caller_id",
                 "a caller number (digits, optional leading +)")


# Where an inbound call (or a queue's overflow) goes: an extension, an IVR flow
# (data/flows/<name>.yaml), a queue, or an extension's voicemail.
DESTINATION_RE = re.compile(
    r"^(?:[0-9]{2,8}|ivr:[A-Za-z0-9][A-Za-z0-9_-]{0,63}|queue:[A-Za-z0-9][A-Za-z0-9_.-]{0,63}|voicemail:[0-9]{2,8})$"
)
IVR_PREFIX = "ivr:"
QUEUE_PREFIX = "queue:"
VOICEMAIL_PREFIX = "voicemail:"
DESTINATION_HELP = "an extension number (2-8 digits), ivr:<flow>, queue:<name> or voicemail:<extension>"


def check_inbound_route(route: InboundRoute, where: str = "inbound_route") -> None:
    """Validate one inbound route's fields (not that its destination exists)."""
    check_record_types(route, where)
    _check_regex(route.did, DID_RE, where, "did", "a DID (digits, optional leading +)")
    _check_regex(route.destination, DESTINATION_RE, where, "destination",
                 DESTINATION_HELP)


def check_outbound_route(route: OutboundRoute, where: str = "outbound_route") -> None:
    """Validate one outbound route's fields (not that its trunk exists)."""
    check_record_types(route, where)
    _check_regex(route.name, NAME_RE, where, "name",
                 "a name (letters, digits, '_', '.', '-', up to 64)")
    try:
        validate_pattern(route.pattern)
    except ConfigError as exc:
        raise _fail(where, "pattern", str(exc)) from None
    _check_regex(route.trunk, NAME_RE, where, "trunk", "a trunk name")
    _check_range(route.strip, 0, 32, where, "strip")
    if route.prepend and not DIAL_STRING_RE.match(route.prepend):
        raise _fail(where, "prepend", f"{route.prepend!r} is not a dial string")
    _check_regex(route.caller_id, CALLER_ID_RE, where, "caller_id",
                 "a caller number (digits, optional leading +)")
    _check_range(route.priority, 0, 100000, where, "priority")


def check_setting(name: str, value: str, where: str = "settings") -> None:
    """Validate one setting name and value."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ConfigError(f"{where}: {name!r} is not a setting name")
    check_type(value, str, where, name)
    if len(value) > 4096:
        raise _fail(where, name, "is longer than 4096 characters")


AGENT_ID_RE = re.compile(r"^[0-9]{2,8}$")
PIN_RE = re.compile(r"^[0-9]{4,8}$")
DTMF_KEY_RE = re.compile(r"^[0-9*#]$")


def check_agent(agent: AgentConfig, where: str = "agent") -> None:
    """Validate one agent's fields."""
    check_record_types(agent, where)
    _check_regex(agent.agent_id, AGENT_ID_RE, where, "agent_id", "2-8 digits")
    _check_text(agent.name, where, "name", required=True)
    if not PIN_RE.match(agent.pin):
        raise _fail(where, "pin", "must be 4-8 digits (typed on the phone keypad)")
    for i, text in enumerate(agent.skills):
        try:
            parse_skills([text])
        except SkillError as exc:
            raise _fail(where, f"skills[{i}]", str(exc)) from None
    try:
        parse_skills(agent.skills)
    except SkillError as exc:
        raise _fail(where, "skills", str(exc)) from None
    _check_range(agent.max_no_answer, 0, 100, where, "max_no_answer")
    _check_range(agent.ring_timeout, 5, 300, where, "ring_timeout")


def check_queue(queue: QueueConfig, where: str = "queue") -> None:
    """Validate one queue's fields (not that its members and overflow exist)."""
    check_record_types(queue, where)
    _check_regex(queue.name, NAME_RE, where, "name", "a name (letters, digits, '_', '.', '-', up to 64)")
    _check_regex(queue.number, EXTENSION_RE, where, "number", "2-8 digits")
    if queue.strategy not in STRATEGIES:
        raise _fail(where, "strategy", f"{queue.strategy!r} is not one of {', '.join(sorted(STRATEGIES))}")
    seen: set[str] = set()
    for i, member in enumerate(queue.members):
        _check_regex(member, AGENT_ID_RE, where, f"members[{i}]", "an agent id (2-8 digits)")
        if member in seen:
            raise _fail(where, f"members[{i}]", f"agent {member} is listed twice")
        seen.add(member)
    for i, text in enumerate(queue.skills):
        try:
            parse_skills([text])
        except SkillError as exc:
            raise _fail(where, f"skills[{i}]", str(exc)) from None
    for i, text in enumerate(queue.escalations):
        try:
            parse_escalation(text)
        except SkillError as exc:
            raise _fail(where, f"escalations[{i}]", str(exc)) from None
    try:
        requirements_from_text(queue.skills, queue.escalations)
    except SkillError as exc:
        raise _fail(where, "escalations", str(exc)) from None
    _check_range(queue.ring_step_seconds, 1, 300, where, "ring_step_seconds")
    _check_range(queue.wrapup_seconds, 0, 3600, where, "wrapup_seconds")
    _check_range(queue.max_wait_seconds, 0, 86400, where, "max_wait_seconds")
    _check_range(queue.max_callers, 0, 10000, where, "max_callers")
    _check_regex(queue.overflow, DESTINATION_RE, where, "overflow", DESTINATION_HELP)
    if queue.overflow == f"{QUEUE_PREFIX}{queue.name}":
        raise _fail(where, "overflow", "overflows the queue into itself")
    _check_range(queue.announce_seconds, 0, 3600, where, "announce_seconds")
    if queue.announce_seconds and queue.announce_seconds < 10:
        raise _fail(where, "announce_seconds", "announcing more often than every 10 s leaves no music")
    if queue.moh is not None:
        _check_text(queue.moh, where, "moh", required=True)
        if ".." in queue.moh.split("/") or queue.moh.startswith("/"):
            raise _fail(where, "moh", "must be a file name in the sounds directory")
    _check_regex(queue.callback_key, DTMF_KEY_RE, where, "callback_key", "one DTMF key (0-9, * or #)")
    _check_range(queue.service_level_seconds, 1, 3600, where, "service_level_seconds")
    if queue.recording not in RECORDING_MODES:
        raise _fail(where, "recording", f"{queue.recording!r} is not one of {', '.join(RECORDING_MODES)}")
