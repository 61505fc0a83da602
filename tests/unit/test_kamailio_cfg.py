"""The front door's configuration: rendered from the repository's template, accepted by Kamailio."""
from __future__ import annotations

from pathlib import Path

import pytest

from appliance.cluster.kamailio import (
    EngineHop,
    FrontDoor,
    KamailioError,
    check,
    engines_from,
    main,
    render,
    write_config,
)

ENGINES = (EngineHop("127.0.0.11", 5060), EngineHop("127.0.0.12", 5060, "tcp"))


def test_the_rendered_configuration_passes_kamailio_s_own_check(tmp_path: Path) -> None:
    cfg = write_config(FrontDoor("127.0.0.1", 5060, ENGINES, tmp_path))
    check(cfg)  # kamailio -c -f: raises with Kamailio's words if it refuses
    assert (tmp_path / "dispatcher.list").read_text() == (
        "1 sip:127.0.0.11:5060 0 0\n1 sip:127.0.0.12:5060;transport=tcp 0 0\n")


def test_every_placeholder_is_filled(tmp_path: Path) -> None:
    text = render(FrontDoor("127.0.0.1", 5070, ENGINES, tmp_path, ping_interval=2))
    assert "{{" not in text
    assert "listen=udp:127.0.0.1:5070" in text
    assert 'modparam("dispatcher", "ds_ping_interval", 2)' in text
    assert f'"list_file", "{tmp_path}/dispatcher.list"' in text


def test_kamailio_refuses_a_broken_configuration_and_says_why(tmp_path: Path) -> None:
    cfg = write_config(FrontDoor("127.0.0.1", 5060, ENGINES, tmp_path))
    cfg.write_text(cfg.read_text().replace('"fr_timer"', '"no_such_timer"'))
    with pytest.raises(KamailioError, match="no_such_timer"):
        check(cfg)


def test_bad_front_door_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one engine"):
        FrontDoor("127.0.0.1", 5060, (), tmp_path)
    with pytest.raises(ValueError, match="ping_interval"):
        FrontDoor("127.0.0.1", 5060, ENGINES, tmp_path, ping_interval=0)
    with pytest.raises(ValueError, match="want HOST:PORT"):
        engines_from(["127.0.0.11"])
    assert engines_from(["127.0.0.11:5070"]) == (EngineHop("127.0.0.11", 5070),)


def test_the_command_line_writes_and_checks_or_names_the_bad_argument(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--port", "5999", "--engine", "127.0.0.11:5060", "--run-dir", str(tmp_path), "--check-only"]) == 0
    assert "1 sip:127.0.0.11:5060 0 0" in (tmp_path / "dispatcher.list").read_text()
    assert main(["--engine", "127.0.0.11", "--run-dir", str(tmp_path)]) == 1
    assert "engine address '127.0.0.11': want HOST:PORT" in capsys.readouterr().err
