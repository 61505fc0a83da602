"""sd_notify over a real AF_UNIX datagram socket (systemd-python and our fallback), logging."""

from __future__ import annotations

import logging
import os
import pathlib
import socket
import sys
import uuid
from collections.abc import Iterator

import pytest

from appliance.system import systemd as sd


@pytest.fixture
def notify_socket(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    sock.settimeout(2.0)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


@pytest.fixture
def abstract_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    name = f"plateau-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2.0)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    yield sock
    sock.close()


def _received(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


@pytest.fixture(params=["systemd-python", "fallback"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "systemd-python":
        if sd._daemon is None:
            pytest.fail("systemd-python is not installed (pip install systemd-python)")
    else:
        monkeypatch.setattr(sd, "_daemon", None)
    return request.param


def test_notifications_arrive(notify_socket: socket.socket, backend: str) -> None:
    assert sd.notify_ready() is True
    assert _received(notify_socket) == "READY=1"
    assert sd.notify_status("3 calls\n2 registrations") is True
    assert _received(notify_socket) == "STATUS=3 calls 2 registrations"
    assert sd.notify_watchdog() is True
    assert _received(notify_socket) == "WATCHDOG=1"
    assert sd.notify_stopping() is True
    assert _received(notify_socket) == "STOPPING=1"


def test_abstract_socket(abstract_socket: socket.socket, backend: str) -> None:
    assert sd.notify_ready() is True
    assert _received(abstract_socket) == "READY=1"


def test_forced_fallback_while_library_installed(notify_socket: socket.socket) -> None:
    assert sd.sd_notify("STATUS=fallback", use_library=False) is True
    assert _received(notify_socket) == "STATUS=fallback"


def test_noop_outside_systemd(monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sd.notify_ready() is False
    assert sd.notify_watchdog() is False


def test_fallback_reports_missing_socket(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    with caplog.at_level(logging.WARNING):
        assert sd.sd_notify("READY=1", use_library=False) is False
    assert "sd_notify" in caplog.text


def test_watchdog_interval() -> None:
    pid = str(os.getpid())
    assert sd.watchdog_interval({}) is None
    assert sd.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert sd.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": pid}) == 15.0
    assert sd.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert sd.watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert sd.watchdog_interval({"WATCHDOG_USEC": "0"}) is None


def test_stderr_logging_shows_call_fields(capsys: pytest.CaptureFixture[str]) -> None:
    handler = sd.make_log_handler(environ={})
    assert isinstance(handler.formatter, sd.PlainFormatter)
    logger = logging.getLogger("plateau.test.plain")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        sd.CallLogger(logger, CALL_ID="abc@host", EXTENSION="1001").warning("answered %s", 1)
        logger.warning("plain", extra={"CALL_ID": "x", "lower": "ignored"})
    finally:
        logger.removeHandler(handler)
    err = capsys.readouterr().err.splitlines()
    assert err[0].endswith("WARNING plateau.test.plain: answered 1 [CALL_ID=abc@host EXTENSION=1001]")
    assert err[1].endswith("plain [CALL_ID=x]")


def test_journal_handler_sends_structured_fields(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if sd._journal is None:
        pytest.fail("systemd-python is not installed (pip install systemd-python)")
    sent: list[tuple[str, dict[str, object]]] = []
    with open(tmp_path / "stderr", "w") as fake_stderr:
        monkeypatch.setattr(sys, "stderr", fake_stderr)
        st = os.fstat(fake_stderr.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert sd.under_journal(env) is True
        assert sd.under_journal({"JOURNAL_STREAM": "1:2"}) is False
        assert sd.under_journal({"INVOCATION_ID": "abc"}) is True
        handler = sd.make_log_handler(env, sender=lambda msg, **f: sent.append((msg, f)))
    logger = logging.getLogger("plateau.test.journal")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        sd.CallLogger(logger, CALL_ID="abc@host").error("no answer from %s", "1002",
                                                       extra={"EXTENSION": "1002"})
    finally:
        logger.removeHandler(handler)
    (message, fields), = sent
    assert message == "no answer from 1002"
    assert fields["CALL_ID"] == "abc@host" and fields["EXTENSION"] == "1002"
    assert fields["PRIORITY"] == "3" and fields["SYSLOG_IDENTIFIER"] == "plateau"
    assert fields["LOGGER"] == "plateau.test.journal"
    assert all(k.isupper() for k in fields)  # no msg/args/levelname junk fields


def test_call_logger_rejects_bad_field_names() -> None:
    with pytest.raises(ValueError, match="UPPER_CASE"):
        sd.CallLogger(logging.getLogger("x"), call_id="abc")


def test_setup_logging_installs_one_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        handler = sd.setup_logging(verbose=True)
        sd.setup_logging(verbose=False)
        assert len(root.handlers) == 1 and root.level == logging.INFO
        assert isinstance(handler, logging.StreamHandler)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
