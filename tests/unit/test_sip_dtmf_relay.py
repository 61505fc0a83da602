"""SIP INFO key bodies: application/dtmf-relay and application/dtmf, range-checked."""
from __future__ import annotations

import pytest

from appliance.sip.dtmf_relay import InfoKey, parse_info_key


@pytest.mark.parametrize("body,ctype,want", [
    ("Signal=5\r\nDuration=160\r\n", "application/dtmf-relay", InfoKey("5", 160)),
    ("signal= #\nduration=250", "application/dtmf-relay; charset=x", InfoKey("#", 250)),
    ("Signal=10\r\nDuration=100", "application/dtmf-relay", InfoKey("*", 100)),
    ("Signal=11", "application/dtmf-relay", InfoKey("#", 100)),  # no Duration: the default
    ("Signal=a\r\nDuration=99999", "application/dtmf-relay", InfoKey("A", 8000)),  # clamped
    ("Signal=1\r\nDuration=0", "application/dtmf-relay", InfoKey("1", 40)),
    ("Signal=1\r\nDuration=x", "application/dtmf-relay", InfoKey("1", 100)),
    ("7", "application/dtmf", InfoKey("7", 100)),
])
def test_keys_are_read_from_info_bodies(body: str, ctype: str, want: InfoKey) -> None:
    assert parse_info_key(body, ctype) == want


@pytest.mark.parametrize("body,ctype", [
    ("Signal=16\r\nDuration=100", "application/dtmf-relay"),  # flash: not a key to relay
    ("Signal=\r\n", "application/dtmf-relay"),
    ("Duration=100", "application/dtmf-relay"),
    ("Signal=55", "application/dtmf-relay"),
    ("xy", "application/dtmf"),
    ("", "application/dtmf-relay"),
])
def test_bodies_without_a_key_carry_none(body: str, ctype: str) -> None:
    assert parse_info_key(body, ctype) is None
