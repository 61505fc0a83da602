"""The control API's request and response bodies: one pydantic model per body (docs/ARCHITECTURE.md).

The server validates every request body with these models and the OpenAPI document
(``/v1/openapi.json``) is generated from them, so the checks and the documentation cannot drift.
Bodies are JSON objects with exactly the documented fields: an unknown field is refused (a typo
must not be ignored), strings are never empty, and nothing is coerced (``"from": 1001`` is an error,
not ``"1001"``). A field given as ``null`` counts as absent when it is optional.

`body_errors` turns a failed validation into the API's messages, every bad field at once, in the
words the API has always used ("field 'to' is required").
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, ValidationError, WithJsonSchema

from appliance.schema.errors import FieldError, dotted, field_errors

NonEmpty = Annotated[str, Field(min_length=1)]


class Body(BaseModel):
    """A request body: a JSON object with exactly these fields, checked strictly."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


class NoFields(Body):
    """A body with no fields: ``{}`` (or no body at all)."""


class OriginateBody(Body):
    """Ring extension ``from``; when it answers, call ``to``."""

    from_ext: NonEmpty = Field(alias="from", description="the extension that rings first")
    to: NonEmpty = Field(description="what it then calls: an extension, a queue, an external number")
    caller_id: NonEmpty | None = Field(None, description="the caller ID shown to ``to``")


class TransferBody(Body):
    """Blind-transfer the channel's peer."""

    to: NonEmpty = Field(description="the new destination")


class AgentActionBody(Body):
    """An agent's login (``device`` required), logout, pause (with a ``reason``) or unpause."""

    device: NonEmpty | None = Field(None, description="the extension the agent logs in on")
    reason: NonEmpty | None = Field(None, description="the pause reason")


class MonitorBody(Body):
    """Ring ``device``; on answer it supervises the agent's call."""

    device: NonEmpty = Field(description="the supervisor's extension")
    mode: NonEmpty = Field(description="listen, whisper or barge")


class InteractionBody(Body):
    """The agent's wrap-up of an interaction: give at least one field."""

    status: NonEmpty | None = Field(None, description="open, resolved, closed or follow-up")
    disposition: NonEmpty | None = Field(None, description="a disposition code")
    notes: NonEmpty | None = Field(None, description="free text")


def _callback_time(value: Any) -> int | float | str:
    # A JSON number (epoch seconds) or a non-empty string (ISO 8601); a bool is not a number.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a str")
    if not value:
        raise ValueError("must not be empty")
    return value


CallbackTime = Annotated[
    int | float | str,
    PlainValidator(_callback_time),
    WithJsonSchema({"oneOf": [{"type": "number"}, {"type": "string", "minLength": 1}],
                    "description": "epoch seconds, or an ISO 8601 time"}),
]


class DispositionBody(Body):
    """The agent's disposition of a lead; ``callback_at`` schedules a callback."""

    code: NonEmpty = Field(description="one of the campaign's disposition codes")
    callback_at: CallbackTime | None = None
    agent: NonEmpty | None = Field(None, description="the agent who dispositions")


class DncBody(Body):
    """A number for the do-not-call list, normalised in the campaign's or the site's country."""

    number: NonEmpty
    note: NonEmpty | None = None
    campaign: NonEmpty | None = None


PREVIEW_ACTIONS = ("dial", "skip")


def _preview_action(value: str) -> str:
    if value not in PREVIEW_ACTIONS:
        raise ValueError("must be 'dial' or 'skip'")
    return value


class PreviewActionBody(Body):
    """Dial or skip the lead reserved for the agent."""

    action: Annotated[NonEmpty, AfterValidator(_preview_action)] = Field(
        json_schema_extra={"enum": list(PREVIEW_ACTIONS)})


# -- responses ----------------------------------------------------------------------------------
class FieldErrorBody(BaseModel):
    """One bad field of a refused record: the path to it and what is wrong (schema/errors.FieldError)."""

    loc: list[str | int]
    msg: str


class ErrorBody(BaseModel):
    """Every answer that is not a 200: what went wrong, in one sentence; a refused record's
    answer lists its bad fields too, as data, for a form to put each beside its field."""

    error: str
    errors: list[FieldErrorBody] | None = None


class Result(BaseModel):
    """A 200 answer: a JSON object whose fields the route's description names."""

    model_config = ConfigDict(extra="allow")


class StatusResult(Result):
    """The engine's state; the figures of each part (sip, media, storage, supervision...) are objects."""

    version: str
    uptime: float = Field(description="seconds since the engine started")
    hostname: str
    calls: int
    channels: int
    registrations: int
    blocked: int


class Registration(Result):
    aor: str
    contact: str
    source: str = Field(description="host:port the REGISTER came from")
    transport: str
    expires_in: int = Field(description="seconds")
    user_agent: str | None


class Bridge(Result):
    id: str
    call: str
    channels: list[str]


class Blocked(Result):
    address: str
    until: float = Field(description="epoch seconds")
    reason: str
    failures: int


class OriginateResult(Result):
    call: str = Field(description="the new call's id")


class TransferResult(Result):
    transferring: str = Field(description="the channel whose peer is transferred")
    to: str


class HangupResult(Result):
    hungup: str


class UnblockResult(Result):
    unblocked: str


class ReloadResult(Result):
    reloaded: bool
    hardware: Any = Field(description="what the reload changed on the line boards and headsets")


class AgentResult(Result):
    agent: str
    state: str
    pause_reason: str | None


class MonitorResult(Result):
    call: str = Field(description="the supervisor's call")
    agent: str
    device: str
    mode: str


class HeadsetActionResult(Result):
    extension: str
    action: str
    state: str | None


class PreviewActionResult(Result):
    lead: int
    action: str = Field(json_schema_extra={"enum": list(PREVIEW_ACTIONS)})
    number: str | None = Field(None, description="the number dialled (dial only)")


class DncResult(Result):
    number: str = Field(description="E.164")
    added: bool = Field(description="false when it was on the list already")


# -- errors as the API words them ------------------------------------------------------------------
# The order of the old hand-written checker, whose first message clients and tests know: unknown
# fields, then missing ones, then bad values.
_RANK = {"extra_forbidden": 0, "missing": 1}


def _message(kind: str, error: FieldError) -> str:
    name = dotted(error.loc)
    if not error.loc:
        return "body must be a JSON object" if kind in ("model_type", "dict_type") else error.msg
    if kind == "extra_forbidden":
        return f"unknown field {name!r}"
    if kind == "missing":
        return f"field {name!r} is required"
    if kind == "string_type":
        return f"field {name!r} must be a str"
    if kind == "string_too_short":
        return f"field {name!r} must not be empty"
    return f"field {name!r} {error.msg}" if kind == "value_error" else f"field {name!r}: {error.msg}"


def body_errors(exc: ValidationError) -> list[str]:
    """Every error of a body's validation as the API's messages, unknown fields first."""
    kinds = [str(err["type"]) for err in exc.errors(include_url=False)]
    pairs = sorted(zip(kinds, field_errors(exc), strict=True), key=lambda p: _RANK.get(p[0], 2))
    return [_message(kind, error) for kind, error in pairs]


def parse_body(model: type[Body], body: Any) -> Body:
    """Validate a decoded JSON body (None: no body, the same as ``{}``); ValueError lists every error."""
    try:
        return model.model_validate({} if body is None else body)
    except ValidationError as exc:
        raise BodyInvalid(body_errors(exc)) from None


class BodyInvalid(ValueError):
    """A request body failed its model; ``messages`` has one sentence per bad field."""

    def __init__(self, messages: list[str]) -> None:
        self.messages = messages
        super().__init__("; ".join(messages))
