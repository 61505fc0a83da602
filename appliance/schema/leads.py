"""A lead as the admin edits it: its number, status, time zone and card fields, checked at once.

The number is normalised to E.164 by the caller (appliance/dialer/numbers.py knows the site's
country); this model checks what the edit form may change. A lead being dialled ("dialing") is
the dialer's to change, so the form may not set that status.
"""
from __future__ import annotations

import re
import zoneinfo
from typing import Annotated, Any

from pydantic import BeforeValidator, field_validator

from appliance.schema.errors import problem
from appliance.schema.types import Record, Text, one_of

# The statuses a person may give a lead (appliance/store/dialer.LEAD_STATUSES less "dialing").
EDITABLE_STATUSES = ("new", "retry", "callback", "done", "dnc", "exhausted")
FIELD_KEY_RE = re.compile(r"^[\w .-]{1,32}$")
MAX_FIELD = 200
MAX_FIELDS = 40


def _fields(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError("must be a mapping of card fields")
    return {str(k): v if isinstance(v, str) else str(v) for k, v in value.items()}


class LeadEdit(Record):
    """What the lead form changes; every error is reported at once, beside its field."""

    status: Text
    timezone: Text
    fields: Annotated[dict[str, str], BeforeValidator(_fields)] = {}

    @field_validator("status")
    @classmethod
    def _status(cls, v: str) -> str:
        return one_of(v, EDITABLE_STATUSES)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        if v not in zoneinfo.available_timezones():
            raise problem("an IANA time zone, e.g. Europe/Paris")
        return v

    @field_validator("fields")
    @classmethod
    def _card(cls, v: dict[str, str]) -> dict[str, str]:
        if len(v) > MAX_FIELDS:
            raise problem(f"at most {MAX_FIELDS} card fields")
        for key, text in v.items():
            if not FIELD_KEY_RE.fullmatch(key):
                raise problem("a field name of letters, digits, space . _ - (up to 32)", key)
            if len(text) > MAX_FIELD or any(ord(c) < 32 for c in text):
                raise problem(f"at most {MAX_FIELD} characters on one line", key)
        return v
