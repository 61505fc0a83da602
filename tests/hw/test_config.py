"""data/hardware.yaml: accepted forms, and errors that name the field."""
from __future__ import annotations

from pathlib import Path

import pytest

from hw.config import HardwareConfigError, load, parse
from hw.frames import Cadence, CidMode
from hw.fxo import FxoConfig
from hw.fxs import FxsConfig


def test_accepted_forms(tmp_path: Path) -> None:
    path = tmp_path / "hardware.yaml"
    path.write_text("boards:\n  - device: /dev/ttyACM0\n    ports:\n      0: {fxs: '1005'}\n"
                    "      1: {fxs: {extension: 1006, cadence: uk, cid: dtmf}}\n"
                    "      2: {fxo: {did: '0140000000', trunk_name: analog, answer_on_dial: true}}\n")
    (board,) = load(path)
    assert board.device == "/dev/ttyACM0" and board.name == "board0"
    assert board.ports[0] == FxsConfig("1005")
    assert board.ports[1] == FxsConfig("1006", Cadence.UK, CidMode.DTMF)
    assert board.ports[2] == FxoConfig("0140000000", "analog", True)


@pytest.mark.parametrize("doc,field", [
    ({}, "boards"),
    ({"boards": [{"ports": {}}]}, "boards[0].device"),
    ({"boards": [{"device": "x", "ports": {16: {"fxs": "1"}}}]}, "boards[0].ports.16"),
    ({"boards": [{"device": "x", "ports": {0: {"fxq": "1"}}}]}, "boards[0].ports.0"),
    ({"boards": [{"device": "x", "ports": {1: {"fxo": {"trunk_name": "a"}}}}]}, "boards[0].ports.1.fxo.did"),
    ({"boards": [{"device": "x", "ports": {0: {"fxs": {"extension": "1", "cadence": "DE"}}}}]},
     "boards[0].ports.0.fxs.cadence"),
    ({"boards": [{"device": "x", "colour": 1}]}, "boards[0]: unknown field 'colour'"),
])
def test_errors_name_the_field(doc: object, field: str) -> None:
    with pytest.raises(HardwareConfigError, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse(doc)


def test_a_reload_matches_boards_by_name_and_device_so_both_are_unique() -> None:
    one = {"device": "/dev/ttyACM0", "name": "lb0", "ports": {0: {"fxs": "1005"}}}
    with pytest.raises(HardwareConfigError, match=r"boards\[1\]\.name: 'lb0' is used twice"):
        parse({"boards": [one, {**one, "device": "/dev/ttyACM1"}]})
    with pytest.raises(HardwareConfigError, match=r"boards\[1\]\.device: /dev/ttyACM0 is already used by boards\[0\]"):
        parse({"boards": [one, {**one, "name": "lb1"}]})


def test_every_bad_field_is_named_at_once() -> None:
    """The validation layer's shape: one FieldError per bad field, all of them in one error."""
    with pytest.raises(HardwareConfigError) as info:
        parse({"boards": [{"device": "x", "ports": {0: {"fxs": {"extension": "1", "cadence": "DE"}},
                                                    1: {"fxo": {"trunk_name": "a"}}, 16: {"fxs": "1"}}}]})
    assert [str(e) for e in info.value.errors] == [
        "boards[0].ports.0.fxs.cadence: one of FR, UK, US",
        "boards[0].ports.1.fxo.did: required",
        "boards[0].ports.16: port numbers are 0-15",
    ]
