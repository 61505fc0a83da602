"""systemd integration: sd_notify (READY, STATUS, WATCHDOG) and journald logging.

Uses systemd-python when it is installed; otherwise speaks the sd_notify protocol
itself (sd_notify(3): one AF_UNIX datagram of newline-separated KEY=VALUE lines to
$NOTIFY_SOCKET, a leading '@' meaning the abstract namespace). Everything is a
no-op outside systemd (NOTIFY_SOCKET unset).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

try:  # systemd-python is optional (pip extra "systemd")
    from systemd import daemon as _daemon
    from systemd import journal as _journal
except ImportError:  # pragma: no cover - depends on the installation
    _daemon = None  # type: ignore[assignment]
    _journal = None  # type: ignore[assignment]

# journald field names: upper-case letters, digits, underscore; not starting with '_'
# (those are trusted fields set by journald itself).
_FIELD_RE = re.compile(r"^[A-Z0-9][A-Z0-9_]{0,63}$")
SYSLOG_IDENTIFIER = "plateau"


def _notify_socket(state: str) -> bool:
    """Send ``state`` to $NOTIFY_SOCKET ourselves; return False when not under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address[0] == "@":
        address = "\0" + address[1:]  # abstract namespace (sd_notify(3))
    elif address[0] != "/":
        log.warning("NOTIFY_SOCKET=%r is not a unix socket path; not notifying", address)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode("utf-8"), address)
    except OSError as exc:
        log.warning("sd_notify to %s failed: %s", os.environ.get("NOTIFY_SOCKET"), exc)
        return False
    return True


def sd_notify(state: str, *, use_library: bool = True) -> bool:
    """Send one notification; return whether it was sent.

    ``use_library=False`` forces our own implementation (tests run both paths).
    """
    if use_library and _daemon is not None:
        if not os.environ.get("NOTIFY_SOCKET"):
            return False
        return bool(_daemon.notify(state))
    return _notify_socket(state)


def notify_ready() -> bool:
    """Tell systemd start-up is complete (Type=notify units)."""
    return sd_notify("READY=1")


def notify_status(text: str) -> bool:
    """Set the one-line status shown by ``systemctl status``."""
    # A newline would start a new KEY=VALUE assignment in the datagram.
    return sd_notify("STATUS=" + " ".join(text.splitlines()))


def notify_watchdog() -> bool:
    """Reset the service watchdog timer (WatchdogSec=)."""
    return sd_notify("WATCHDOG=1")


def notify_stopping() -> bool:
    """Tell systemd we are shutting down."""
    return sd_notify("STOPPING=1")


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Return how often to call notify_watchdog() (half of WATCHDOG_USEC), or None.

    As sd_watchdog_enabled(3): ignored when WATCHDOG_PID names another process.
    """
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            log.warning("WATCHDOG_PID=%r is not a number; ignoring the watchdog", pid)
            return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("WATCHDOG_USEC=%r is not a number; ignoring the watchdog", usec)
        return None
    if value <= 0:
        return None
    return value / 2 / 1_000_000


# -- logging ---------------------------------------------------------------------------

_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)


def structured_fields(record: logging.LogRecord) -> dict[str, str]:
    """Return the journal fields a caller attached with ``extra={"CALL_ID": ...}``.

    Only valid journald field names are kept (upper case); None values are dropped.
    """
    fields: dict[str, str] = {}
    for key, value in record.__dict__.items():
        if key in _STANDARD_ATTRS or value is None or not _FIELD_RE.match(key):
            continue
        fields[key] = str(value)
    return fields


class PlainFormatter(logging.Formatter):
    """Readable stderr format; structured fields are appended as KEY=value."""

    def __init__(self, with_time: bool = True) -> None:
        fmt = "%(asctime)s %(levelname)-7s %(name)s: %(message)s" if with_time else (
            "%(levelname)-7s %(name)s: %(message)s"
        )
        super().__init__(fmt)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = structured_fields(record)
        if fields:
            text += " [" + " ".join(f"{k}={v}" for k, v in sorted(fields.items())) + "]"
        return text


def _journal_handler_class() -> type[logging.Handler] | None:
    if _journal is None:
        return None

    class PlateauJournalHandler(_journal.JournalHandler):  # type: ignore[misc, name-defined]
        """JournalHandler that sends only valid upper-case fields.

        The stock handler forwards every LogRecord attribute (msg, args, ...) as a
        field; journald drops them, but the caller's CALL_ID / EXTENSION are the
        ones we mean to index.
        """

        def emit(self, record: logging.LogRecord) -> None:
            try:
                fields = dict(self._extra)
                fields.update(structured_fields(record))
                if record.exc_info:
                    fields["EXCEPTION_TEXT"] = self.formatter.formatException(record.exc_info) \
                        if self.formatter else logging.Formatter().formatException(record.exc_info)
                self.send(
                    self.format(record),
                    PRIORITY=format(self.map_priority(record.levelno)),
                    LOGGER=record.name,
                    THREAD_NAME=record.threadName,
                    CODE_FILE=record.pathname,
                    CODE_LINE=record.lineno,
                    CODE_FUNC=record.funcName,
                    **fields,
                )
            except Exception:  # noqa: BLE001 - logging must never raise into the caller
                self.handleError(record)

    return PlateauJournalHandler


def under_journal(environ: Mapping[str, str] | None = None) -> bool:
    """True when stderr is connected to journald (systemd.exec(5) JOURNAL_STREAM)."""
    env = os.environ if environ is None else environ
    stream = env.get("JOURNAL_STREAM", "")
    if stream:
        dev, _, ino = stream.partition(":")
        try:
            st = os.fstat(sys.stderr.fileno())
            if (st.st_dev, st.st_ino) == (int(dev), int(ino)):
                return True
        except (ValueError, OSError, AttributeError):
            pass
    return bool(env.get("INVOCATION_ID"))


def make_log_handler(
    environ: Mapping[str, str] | None = None,
    sender: Callable[..., Any] | None = None,
) -> logging.Handler:
    """Return a journald handler under systemd (when available), else a stderr handler.

    ``sender`` replaces ``systemd.journal.send`` (tests capture the fields with it).
    """
    handler_cls = _journal_handler_class()
    if handler_cls is not None and under_journal(environ):
        kwargs: dict[str, Any] = {"SYSLOG_IDENTIFIER": SYSLOG_IDENTIFIER}
        if sender is not None:
            kwargs["sender_function"] = sender
        handler = handler_cls(**kwargs)
        handler.setFormatter(logging.Formatter("%(message)s"))
        return handler
    stream_handler = logging.StreamHandler(sys.stderr)
    # journald (via stderr without systemd-python) stamps time itself.
    stream_handler.setFormatter(PlainFormatter(with_time=not under_journal(environ)))
    return stream_handler


def setup_logging(verbose: bool) -> logging.Handler:
    """Configure the root logger for the engine; return the installed handler."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler = make_log_handler()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    return handler


class CallLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Logger adapter that stamps every line with call fields (CALL_ID, EXTENSION...).

    ``CallLogger(log, CALL_ID=cid, EXTENSION="1001").info("answered")``; per-call
    ``extra=`` values override the adapter's.
    """

    def __init__(self, logger: logging.Logger, **fields: Any) -> None:
        bad = [k for k in fields if not _FIELD_RE.match(k)]
        if bad:
            raise ValueError(f"invalid journal field names: {bad} (use UPPER_CASE)")
        super().__init__(logger, fields)

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs
