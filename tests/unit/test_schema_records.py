"""The record models of the validation layer: every field error at once, with its path."""
from __future__ import annotations

import pytest

from appliance.schema.errors import ConfigError, FieldError, RecordInvalid
from appliance.schema.records import ExtensionRecord, QueueRecord, TrunkRecord
from appliance.schema.types import errors_of, record
from appliance.store.config_yaml import parse_config
from appliance.store.db import Store
from appliance.store.models import Extension


def test_a_record_reports_every_bad_field_at_once() -> None:
    errors = errors_of(ExtensionRecord, {"number": "10a1", "name": "", "secret": "short", "dnd": "yes"},
                       ("extensions", 2))
    assert errors == [
        FieldError(("extensions", 2, "number"), "'10a1' is not 2-8 digits"),
        FieldError(("extensions", 2, "name"), "must not be empty"),
        FieldError(("extensions", 2, "secret"), "must be at least 8 characters"),
        FieldError(("extensions", 2, "dnd"), "must be true or false, got 'yes'"),
    ]
    assert errors[0].field == "number" and str(errors[0]) == "extensions[2].number: '10a1' is not 2-8 digits"


def test_list_items_and_cross_field_rules_have_their_own_path() -> None:
    errors = errors_of(QueueRecord, {"name": "sales", "members": ["2001", "x", "2001"], "callback_key": "12"})
    assert [(str(e)) for e in errors] == [
        "members[1]: 'x' is not an agent id (2-8 digits)",
        "members[2]: agent 2001 is listed twice",
        "callback_key: '12' is not one DTMF key (0-9, * or #)",
    ]
    assert [str(e) for e in errors_of(QueueRecord, {"name": "sales", "overflow": "queue:sales"})] == [
        "overflow: overflows the queue into itself"]
    assert [str(e) for e in errors_of(TrunkRecord, {"name": "t", "host": "h", "register": True})] == [
        "register: registration needs username and secret"]


def test_unknown_and_missing_fields_are_named() -> None:
    with pytest.raises(RecordInvalid) as info:
        record(TrunkRecord, {"host": "carrier.example", "prot": 5060}, ("trunks", 0))
    assert [str(e) for e in info.value.errors] == [
        "trunks[0].name: is required",
        "trunks[0]: unknown field 'prot' (known: name, host, port, transport, username, secret, register,"
        " register_expires, from_domain, caller_id, enabled)",
    ]
    assert isinstance(info.value, ConfigError)


def test_the_store_refuses_with_every_error(store: Store) -> None:
    with pytest.raises(RecordInvalid) as info:
        store.put_extension(Extension(number="1", name="A", secret="short", noanswer_seconds=0))
    assert str(info.value) == ("extension.number: '1' is not 2-8 digits; extension.secret: must be at least 8 "
                               "characters; extension.noanswer_seconds: 0 is not in 1..600")
    assert store.extensions() == []


def test_an_import_reports_the_errors_of_every_record() -> None:
    text = ("extensions:\n- {number: '1001', name: A, secret: short}\n"
            "- {number: '10x', name: B, secret: longenough}\n"
            "trunks:\n- {name: t, host: h, port: 0}\n")
    with pytest.raises(RecordInvalid) as info:
        parse_config(text)
    assert [str(e) for e in info.value.errors] == [
        "trunks[0].port: 0 is not in 1..65535",
        "extensions[0].secret: must be at least 8 characters",
        "extensions[1].number: '10x' is not 2-8 digits",
    ]
