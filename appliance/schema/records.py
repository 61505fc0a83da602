"""One pydantic model per configuration record: the rules every boundary checks a record with.

The store (put_extension...), the YAML import, the web forms and the control API validate a
record with the model here, and get every FieldError at once (docs/ARCHITECTURE.md,
"Validation"). The models mirror the store's dataclasses (appliance/store/models.py), field for
field; what they add is the rules. Cross-record rules (a route's trunk exists, numbers are
unique) need the rest of the configuration and stay with the import and the store.

Why pydantic v2: it is already a dependency, reports every error of a record in one pass with a
path (`loc`) per error, and its models give the API its JSON schemas for free.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from appliance.acd.skills import SkillError, parse_escalation, parse_skills, requirements_from_text
from appliance.acd.strategies import STRATEGIES
from appliance.schema.errors import ConfigError, FieldError, Problems, problem
from appliance.schema.types import (
    Flag,
    OptText,
    Record,
    Text,
    TextList,
    Whole,
    in_range,
    matches,
    one_of,
)

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
AGENT_ID_RE = re.compile(r"^[0-9]{2,8}$")
PIN_RE = re.compile(r"^[0-9]{4,8}$")
DTMF_KEY_RE = re.compile(r"^[0-9*#]$")
# Digest secrets shorter than this are brute-forced quickly from the internet.
MIN_SECRET_LENGTH = 8
MAX_TEXT_LENGTH = 128

TRANSPORTS: tuple[str, ...] = ("udp", "tcp", "tls")
RECORDING_MODES: tuple[str, ...] = ("none", "mixed", "stereo")
EXTENSION_RECORDING: tuple[str, ...] = ("none", "always", "on-demand")

# Where an inbound call (or a queue's overflow) goes: an extension, an IVR flow
# (data/flows/<name>.yaml), a queue, or an extension's voicemail.
DESTINATION_RE = re.compile(
    r"^(?:[0-9]{2,8}|ivr:[A-Za-z0-9][A-Za-z0-9_-]{0,63}|queue:[A-Za-z0-9][A-Za-z0-9_.-]{0,63}|voicemail:[0-9]{2,8})$"
)
IVR_PREFIX = "ivr:"
QUEUE_PREFIX = "queue:"
VOICEMAIL_PREFIX = "voicemail:"
DESTINATION_HELP = "an extension number (2-8 digits), ivr:<flow>, queue:<name> or voicemail:<extension>"
NAME_HELP = "a name (letters, digits, '_', '.', '-', up to 64)"
CALLER_HELP = "a caller number (digits, optional leading +)"


def text(value: str, *, required: bool) -> str:
    """A free-text field: not blank (when required), not too long, no control characters."""
    if required and not value.strip():
        raise ValueError("must not be empty")
    if len(value) > MAX_TEXT_LENGTH:
        raise ValueError(f"is longer than {MAX_TEXT_LENGTH} characters")
    if any(ord(c) < 32 for c in value):
        raise ValueError("must not contain control characters")
    return value


def host(value: str) -> str:
    """A host name, IPv4 or IPv6 literal."""
    if HOSTNAME_RE.match(value) or (":" in value and IPV6_RE.match(value)):
        return value
    raise ValueError(f"{value!r} is not a host name or IP address")


def _items(values: list[str], regex: re.Pattern[str], what: str, twice: str) -> list[str]:
    """Every item of a list matches `regex` and none is listed twice (all errors, by index)."""
    errors: list[FieldError] = []
    seen: set[str] = set()
    for i, value in enumerate(values):
        if not regex.match(value):
            errors.append(FieldError((i,), f"{value!r} is not {what}"))
        elif value in seen:
            errors.append(FieldError((i,), twice.format(value=value, quoted=repr(value))))
        seen.add(value)
    if errors:
        raise Problems(errors)
    return values


def _skill_lines(values: list[str]) -> list[str]:
    """Each "name:level" line on its own (errors by line), then all together (a skill twice)."""
    errors: list[FieldError] = []
    for i, line in enumerate(values):
        try:
            parse_skills([line])
        except SkillError as exc:
            errors.append(FieldError((i,), str(exc)))
    if errors:
        raise Problems(errors)
    try:
        parse_skills(values)
    except SkillError as exc:
        raise ValueError(str(exc)) from None
    return values


class ExtensionRecord(Record):
    """A local user/phone (store.models.Extension)."""

    number: Text
    name: Text
    secret: Text
    dnd: Flag = False
    forward_always: OptText = None
    forward_busy: OptText = None
    forward_noanswer: OptText = None
    noanswer_seconds: Whole = 20
    dial_permissions: TextList = []
    external_caller_id: OptText = None
    enabled: Flag = True
    recording: Text = "none"
    voicemail: Flag = False

    @field_validator("number")
    @classmethod
    def _number(cls, v: str) -> str:
        return matches(v, EXTENSION_RE, "2-8 digits") or v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return text(v, required=True)

    @field_validator("secret")
    @classmethod
    def _secret(cls, v: str) -> str:
        if len(v) < MIN_SECRET_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters")
        return text(v, required=True)

    @field_validator("forward_always", "forward_busy", "forward_noanswer")
    @classmethod
    def _forward(cls, v: str | None) -> str | None:
        return matches(v, DIAL_STRING_RE, "a dialable number")

    @field_validator("noanswer_seconds")
    @classmethod
    def _noanswer(cls, v: int) -> int:
        return in_range(v, 1, 600)

    @field_validator("dial_permissions")
    @classmethod
    def _permissions(cls, v: list[str]) -> list[str]:
        return _items(v, NAME_RE, "a route name", "{quoted} is listed twice")

    @field_validator("external_caller_id")
    @classmethod
    def _caller(cls, v: str | None) -> str | None:
        return matches(v, CALLER_ID_RE, CALLER_HELP)

    @field_validator("recording")
    @classmethod
    def _recording(cls, v: str) -> str:
        return one_of(v, EXTENSION_RECORDING)

    @model_validator(mode="after")
    def _not_to_itself(self) -> ExtensionRecord:
        errors = [FieldError((f,), "forwards the extension to itself")
                  for f in ("forward_always", "forward_busy", "forward_noanswer") if getattr(self, f) == self.number]
        if errors:
            raise Problems(errors)
        return self


class TrunkRecord(Record):
    """A SIP trunk (store.models.Trunk)."""

    name: Text
    host: Text
    port: Whole = 5060
    transport: Text = "udp"
    username: OptText = None
    secret: OptText = None
    # "register" is a method of every pydantic model (abc.ABCMeta.register): aliased.
    register_: Flag = Field(default=False, alias="register")
    register_expires: Whole = 600
    from_domain: OptText = None
    caller_id: OptText = None
    enabled: Flag = True

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return matches(v, NAME_RE, NAME_HELP) or v

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        return host(v)

    @field_validator("from_domain")
    @classmethod
    def _from_domain(cls, v: str | None) -> str | None:
        return None if v is None else host(v)

    @field_validator("port")
    @classmethod
    def _port(cls, v: int) -> int:
        return in_range(v, 1, 65535)

    @field_validator("transport")
    @classmethod
    def _transport(cls, v: str) -> str:
        return one_of(v, TRANSPORTS)

    @field_validator("username", "secret")
    @classmethod
    def _credential(cls, v: str | None) -> str | None:
        return None if v is None else text(v, required=True)

    @field_validator("register_expires")
    @classmethod
    def _expires(cls, v: int) -> int:
        # RFC 3261 section 10.2.1: expiry is the client's choice; below 60 s carriers
        # answer 423 Interval Too Brief, above a day a lost binding goes unnoticed.
        return in_range(v, 60, 86400)

    @field_validator("caller_id")
    @classmethod
    def _caller(cls, v: str | None) -> str | None:
        return matches(v, CALLER_ID_RE, CALLER_HELP)

    @model_validator(mode="after")
    def _registration(self) -> TrunkRecord:
        if self.register_ and (self.username is None or self.secret is None):
            raise problem("registration needs username and secret", "register")
        return self


class InboundRouteRecord(Record):
    """A DID mapped to a local destination (store.models.InboundRoute)."""

    did: Text
    destination: Text

    @field_validator("did")
    @classmethod
    def _did(cls, v: str) -> str:
        return matches(v, DID_RE, "a DID (digits, optional leading +)") or v

    @field_validator("destination")
    @classmethod
    def _destination(cls, v: str) -> str:
        return matches(v, DESTINATION_RE, DESTINATION_HELP) or v


class OutboundRouteRecord(Record):
    """Numbers matching a pattern sent out of a trunk (store.models.OutboundRoute)."""

    name: Text
    pattern: Text
    trunk: Text
    strip: Whole = 0
    prepend: Text = ""
    caller_id: OptText = None
    priority: Whole = 100

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return matches(v, NAME_RE, NAME_HELP) or v

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, v: str) -> str:
        # Imported here: appliance.store's package imports this module (through validation.py).
        from appliance.store.patterns import validate_pattern
        try:
            validate_pattern(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return v

    @field_validator("trunk")
    @classmethod
    def _trunk(cls, v: str) -> str:
        return matches(v, NAME_RE, "a trunk name") or v

    @field_validator("strip")
    @classmethod
    def _strip(cls, v: int) -> int:
        return in_range(v, 0, 32)

    @field_validator("prepend")
    @classmethod
    def _prepend(cls, v: str) -> str:
        if v and not DIAL_STRING_RE.match(v):
            raise ValueError(f"{v!r} is not a dial string")
        return v

    @field_validator("caller_id")
    @classmethod
    def _caller(cls, v: str | None) -> str | None:
        return matches(v, CALLER_ID_RE, CALLER_HELP)

    @field_validator("priority")
    @classmethod
    def _priority(cls, v: int) -> int:
        return in_range(v, 0, 100000)


class AgentRecord(Record):
    """A contact-centre agent (store.models.AgentConfig)."""

    agent_id: Text
    name: Text
    pin: Text
    skills: TextList = []
    max_no_answer: Whole = 3
    ring_timeout: Whole = 20
    enabled: Flag = True

    @field_validator("agent_id")
    @classmethod
    def _agent_id(cls, v: str) -> str:
        return matches(v, AGENT_ID_RE, "2-8 digits") or v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return text(v, required=True)

    @field_validator("pin")
    @classmethod
    def _pin(cls, v: str) -> str:
        if not PIN_RE.match(v):
            raise ValueError("must be 4-8 digits (typed on the phone keypad)")
        return v

    @field_validator("skills")
    @classmethod
    def _skills(cls, v: list[str]) -> list[str]:
        return _skill_lines(v)

    @field_validator("max_no_answer")
    @classmethod
    def _max_no_answer(cls, v: int) -> int:
        return in_range(v, 0, 100)

    @field_validator("ring_timeout")
    @classmethod
    def _ring_timeout(cls, v: int) -> int:
        return in_range(v, 5, 300)


class QueueRecord(Record):
    """An ACD queue (store.models.QueueConfig)."""

    name: Text
    number: OptText = None
    strategy: Text = "longest-idle"
    members: TextList = []
    skills: TextList = []
    escalations: TextList = []
    ring_step_seconds: Whole = 10
    wrapup_seconds: Whole = 10
    max_wait_seconds: Whole = 600
    max_callers: Whole = 0
    overflow: OptText = None
    join_empty: Flag = False
    leave_empty: Flag = True
    announce_seconds: Whole = 30
    moh: OptText = None
    callback_key: OptText = None
    service_level_seconds: Whole = 20
    recording: Text = "none"
    survey: Flag = False
    label: Text = ""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if v and not v.isascii():
            raise ValueError(f"{v!r} is not {NAME_HELP}: it is the queue's identifier (queue:<name>); "
                             "write it with accents as the display name")
        return matches(v, NAME_RE, NAME_HELP) or v

    @field_validator("label")
    @classmethod
    def _label(cls, v: str) -> str:
        return text(v, required=False)

    @field_validator("number")
    @classmethod
    def _number(cls, v: str | None) -> str | None:
        return matches(v, EXTENSION_RE, "2-8 digits")

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, v: str) -> str:
        return one_of(v, sorted(STRATEGIES))

    @field_validator("members")
    @classmethod
    def _members(cls, v: list[str]) -> list[str]:
        return _items(v, AGENT_ID_RE, "an agent id (2-8 digits)", "agent {value} is listed twice")

    @field_validator("skills")
    @classmethod
    def _skills(cls, v: list[str]) -> list[str]:
        errors: list[FieldError] = []
        for i, line in enumerate(v):
            try:
                parse_skills([line])
            except SkillError as exc:
                errors.append(FieldError((i,), str(exc)))
        if errors:
            raise Problems(errors)
        return v

    @field_validator("escalations")
    @classmethod
    def _escalations(cls, v: list[str]) -> list[str]:
        errors: list[FieldError] = []
        for i, line in enumerate(v):
            try:
                parse_escalation(line)
            except SkillError as exc:
                errors.append(FieldError((i,), str(exc)))
        if errors:
            raise Problems(errors)
        return v

    @field_validator("ring_step_seconds")
    @classmethod
    def _ring_step(cls, v: int) -> int:
        return in_range(v, 1, 300)

    @field_validator("wrapup_seconds")
    @classmethod
    def _wrapup(cls, v: int) -> int:
        return in_range(v, 0, 3600)

    @field_validator("max_wait_seconds")
    @classmethod
    def _max_wait(cls, v: int) -> int:
        return in_range(v, 0, 86400)

    @field_validator("max_callers")
    @classmethod
    def _max_callers(cls, v: int) -> int:
        return in_range(v, 0, 10000)

    @field_validator("overflow")
    @classmethod
    def _overflow(cls, v: str | None) -> str | None:
        return matches(v, DESTINATION_RE, DESTINATION_HELP)

    @field_validator("announce_seconds")
    @classmethod
    def _announce(cls, v: int) -> int:
        in_range(v, 0, 3600)
        if v and v < 10:
            raise ValueError("announcing more often than every 10 s leaves no music")
        return v

    @field_validator("moh")
    @classmethod
    def _moh(cls, v: str | None) -> str | None:
        if v is None:
            return None
        text(v, required=True)
        if ".." in v.split("/") or v.startswith("/"):
            raise ValueError("must be a file name in the sounds directory")
        return v

    @field_validator("callback_key")
    @classmethod
    def _callback_key(cls, v: str | None) -> str | None:
        return matches(v, DTMF_KEY_RE, "one DTMF key (0-9, * or #)")

    @field_validator("service_level_seconds")
    @classmethod
    def _service_level(cls, v: int) -> int:
        return in_range(v, 1, 3600)

    @field_validator("recording")
    @classmethod
    def _recording(cls, v: str) -> str:
        return one_of(v, RECORDING_MODES)

    @model_validator(mode="after")
    def _whole(self) -> QueueRecord:
        errors: list[FieldError] = []
        try:
            requirements_from_text(self.skills, self.escalations)
        except SkillError as exc:
            errors.append(FieldError(("escalations",), str(exc)))
        if self.overflow == f"{QUEUE_PREFIX}{self.name}":
            errors.append(FieldError(("overflow",), "overflows the queue into itself"))
        if errors:
            raise Problems(errors)
        return self


def as_fields(obj: Any) -> dict[str, Any]:
    """A dataclass record's fields as a mapping, without copying its values (asdict deep-copies)."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
