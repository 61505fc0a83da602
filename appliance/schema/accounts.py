"""Web UI accounts as records: a user's name and role, checked by one model.

The users page, the first start (``admin``) and the tests create users through
web/accounts.py, which checks them with `UserRecord` here and raises RecordInvalid with every
FieldError at once (user name, role, agent link, password), so the page shows each error beside
its field without reading the message (docs/ARCHITECTURE.md, "Validation").
"""
from __future__ import annotations

from pydantic import field_validator

from appliance.schema.types import Record, Text, one_of

ROLES: tuple[str, ...] = ("admin", "supervisor", "agent")
USERNAME_RULE = "letters, digits, '.', '_' or '-', up to 64"


def _username(value: str) -> str:
    # str.isalnum() accepted any Unicode letter or digit ("é", "٣"): kept, the rule of old.
    if not value or len(value) > 64 or not all(c.isalnum() or c in "._-" for c in value):
        raise ValueError(USERNAME_RULE)
    return value


class UserRecord(Record):
    """A web user's name and role; the agent link and the password are checked by web/accounts.py."""

    username: Text
    role: Text

    @field_validator("username")
    @classmethod
    def _name(cls, value: str) -> str:
        return _username(value)

    @field_validator("role")
    @classmethod
    def _role(cls, value: str) -> str:
        return one_of(value, ROLES)
