"""`plateau health`: is the engine up and answering SIP? (plateau-health.service, the A/B boot gate)

Healthy = the control API of the engine in ``data_dir`` answers `status` (the engine wrote
``api.json`` and its API thread runs: it gets there only after opening its SIP sockets) **and** the
engine answers a SIP OPTIONS on its SIP address and port with a final response (RFC 3261 §11.2: a
UA answers OPTIONS as it would an INVITE, so a 200 means the SIP event loop accepts calls).
`wait_healthy` polls both until a deadline, so the unit can start while the engine is still
coming up. A failure here reboots a trial boot into the previous slot (FailureAction=reboot).
"""
from __future__ import annotations

import ipaddress
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class OptionsResult:
    """A final answer to our OPTIONS."""

    status_line: str
    round_trip: float

    @property
    def ok(self) -> bool:
        return self.status_line.startswith("SIP/2.0 200")


@dataclass
class HealthReport:
    """Outcome of `wait_healthy`; ``reason`` says what was missing when not healthy."""

    healthy: bool
    reason: str
    waited: float
    sip_address: str = ""
    sip_port: int = 0
    options: OptionsResult | None = None
    storage: str = ""  # a storage fault the engine reports (disk full...): loud, but still healthy


def sip_options(host: str, port: int, timeout: float = 2.0) -> OptionsResult | None:
    """Send one OPTIONS over UDP to ``host:port``; the final response, or None on silence.

    Carries the headers RFC 3261 §8.1.1 requires (Via with a z9hG4bK branch, Max-Forwards, From
    with a tag, To, Call-ID, CSeq) and matches the answer by branch and Call-ID (§17.1.3).
    """
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect((host, port))
        sock.settimeout(timeout)
        local, lport = sock.getsockname()[:2]
        uri_host = f"[{host}]" if family == socket.AF_INET6 else host
        via_host = f"[{local}]" if family == socket.AF_INET6 else local
        branch = "z9hG4bK" + secrets.token_hex(8)
        call_id = secrets.token_hex(8) + "@plateau-health"
        msg = (f"OPTIONS sip:{uri_host}:{port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP {via_host}:{lport};branch={branch};rport\r\n"
               "Max-Forwards: 70\r\n"
               f"From: <sip:health@{via_host}>;tag={secrets.token_hex(4)}\r\n"
               f"To: <sip:{uri_host}:{port}>\r\n"
               f"Call-ID: {call_id}\r\n"
               "CSeq: 1 OPTIONS\r\n"
               "Accept: application/sdp\r\n"
               "User-Agent: plateau-health\r\n"
               "Content-Length: 0\r\n\r\n")
        t0 = time.monotonic()
        deadline = t0 + timeout
        try:
            sock.send(msg.encode())
            while True:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                data = sock.recv(65535)
                text = data.decode("utf-8", "replace")
                status = text.split("\r\n", 1)[0]
                if branch in text and call_id in text and not status.startswith("SIP/2.0 1"):
                    return OptionsResult(status, time.monotonic() - t0)
                if time.monotonic() >= deadline:
                    return None
        except (TimeoutError, ConnectionRefusedError):  # silence, or ICMP port unreachable
            return None


def storage_fault(status: dict[str, Any]) -> str:
    """What the engine's ``storage`` status block reports, "" when all is well.

    Not a reason to fail the boot gate: a full data disk is not cured by the previous slot, and
    the engine keeps calls up and their records in memory meanwhile (appliance/store/deferred.py).
    """
    storage = status.get("storage")
    if not isinstance(storage, dict) or storage.get("ok", True):
        return ""
    dropped = sum((storage.get("dropped") or {}).values())
    return (f"{storage.get('fault') or 'writes lost'}: {storage.get('pending', 0)} write(s) deferred"
            + (f", {dropped} dropped" if dropped else ""))


def _engine_sip(data_dir: Path) -> tuple[str, int, str]:
    """The engine's SIP address and port, and its storage fault, from its control API
    (raises OSError/ValueError/ApiError)."""
    from appliance.api.client import ControlApiClient

    status = ControlApiClient.from_data_dir(data_dir, timeout=3.0).status()
    sip = status.get("sip")
    if not isinstance(sip, dict) or not sip.get("address") or not isinstance(sip.get("port"), int):
        raise ValueError(f"control API status has no SIP address/port: {status!r}")
    address = str(sip["address"])
    if ipaddress.ip_address(address).is_unspecified:  # bound to every address: ask on loopback
        address = "::1" if ipaddress.ip_address(address).version == 6 else "127.0.0.1"
    return address, int(sip["port"]), storage_fault(status)


def check_once(data_dir: Path) -> HealthReport:
    """One attempt: API status, then one OPTIONS."""
    from appliance.api.facade import ApiError

    try:
        address, port, storage = _engine_sip(data_dir)
    except FileNotFoundError:
        return HealthReport(False, f"engine not started: no {data_dir / 'api.json'}", 0.0)
    except (ApiError, OSError, ValueError) as exc:
        return HealthReport(False, f"control API not answering: {exc}", 0.0)
    answer = sip_options(address, port)
    if answer is None:
        return HealthReport(False, f"no answer to SIP OPTIONS on {address}:{port}", 0.0, address, port)
    if not answer.ok:
        return HealthReport(False, f"SIP OPTIONS on {address}:{port} answered {answer.status_line!r}",
                            0.0, address, port, answer)
    return HealthReport(True, f"SIP OPTIONS on {address}:{port}: {answer.status_line} in "
                              f"{answer.round_trip * 1000:.1f} ms" + (f"; storage {storage}" if storage else ""),
                        0.0, address, port, answer, storage)


def wait_healthy(data_dir: Path, wait: float, *, interval: float = 1.0,
                 progress: Callable[[HealthReport], None] | None = None) -> HealthReport:
    """Poll `check_once` until healthy or ``wait`` seconds have passed; the last report."""
    t0 = time.monotonic()
    while True:
        report = check_once(data_dir)
        report.waited = time.monotonic() - t0
        if report.healthy or report.waited >= wait:
            return report
        if progress is not None:
            progress(report)
        time.sleep(min(interval, max(0.0, wait - report.waited)))
