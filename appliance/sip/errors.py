"""Stateless error replies for SIP messages that sippy cannot parse.

sippy's ``SipTransactionManager.handleIncoming`` decodes datagrams as strict UTF-8
and raises ``UnicodeDecodeError`` on anything else, so a garbled request gets no
answer at all; an oversize one is truncated or rejected silently.  RFC 3261 §8.2
and §16.3 want a specific 4xx/5xx where one can be built, so this module builds a
minimal response from the raw bytes whenever a Via says where to send it (RFC 3261
§18.2.2), copying whichever of From, To, Call-ID and CSeq (§8.2.6.2) it can, and
otherwise lets the caller drop the message.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

__all__ = [
    "MAX_MESSAGE_SIZE",
    "build_error_response",
    "problem_with",
    "reply_to_unparseable",
    "request_problem",
]

#: RFC 3261 §18.1.1: a message larger than the path MTU goes over a congestion
#: controlled transport; we cap every message at 64 KiB and answer 513 above that
#: (§21.5.11 "Message Too Large").
MAX_MESSAGE_SIZE = 65535

# Full and compact (RFC 3261 §7.3.3) header names, lower case.
_NEEDED = {
    "via": "Via", "v": "Via",
    "from": "From", "f": "From",
    "to": "To", "t": "To",
    "call-id": "Call-ID", "i": "Call-ID",
    "cseq": "CSeq",
}
_REQ_LINE = re.compile(rb"^([A-Za-z!%*_+`'~.-]+) +\S+ +SIP/2\.0\r?$")
_TAG = re.compile(r";\s*tag\s*=", re.IGNORECASE)


def problem_with(data: bytes, max_size: int = MAX_MESSAGE_SIZE) -> tuple[int, str] | None:
    """(code, reason) that ``data`` deserves before it reaches the parser, or None if fine."""
    if len(data) > max_size:
        return 513, "Message Too Large"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return 400, "Bad Request - Invalid UTF-8"
    return None


_CSEQ = re.compile(rb"^\s*(\d{1,10})\s+([A-Za-z!%*_+`'~.-]+)\s*$")
_CONTENT_LENGTH = ("content-length", "l")


def request_problem(data: bytes) -> tuple[int, str] | None:
    """(400, reason) for a request sippy would fail to parse or misread, else None.

    A cheap byte-level check run before sippy's parser, whose failures otherwise end in
    a silent drop (and a traceback on stdout): a request line that is not
    ``Method URI SIP/2.0``, one of the five headers every request needs missing
    (RFC 3261 §8.1.1), a CSeq that is not ``number method`` with the request's method
    (§8.1.1.5, §20.16), or a Content-Length that is not a number or is longer than the
    datagram (§18.3: "SHOULD generate a 400").  Responses are not checked (None).
    """
    if data.startswith(b"SIP/2.0 "):
        return None
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    head = head.lstrip(b"\r\n")
    first = head.split(b"\n", 1)[0]
    m = _REQ_LINE.match(first)
    if m is None:
        return 400, "Bad Request - Malformed Request-Line"
    seen: dict[str, bytes] = {}
    for lname, raw in _header_lines(head):
        canon = _NEEDED.get(lname, lname)
        if canon == "l":
            canon = "content-length"
        seen.setdefault(canon, raw)
    for canon in ("Via", "From", "To", "Call-ID", "CSeq"):
        if canon not in seen or not seen[canon].strip():
            return 400, f"Bad Request - Missing {canon}"
    cseq = _CSEQ.match(seen["CSeq"])
    if cseq is None or int(cseq.group(1)) >= 2**31:
        return 400, "Bad Request - Malformed CSeq"
    if cseq.group(2) != m.group(1):
        return 400, "Bad Request - CSeq method does not match"
    length = seen.get("content-length")
    if length is not None:
        if not length.strip().isdigit():
            return 400, "Bad Request - Malformed Content-Length"
        if int(length) > len(body):
            return 400, "Bad Request - Content-Length beyond end of message"
    return None


def _header_lines(head: bytes) -> list[tuple[str, bytes]]:
    """Unfold header lines (RFC 3261 §7.3.1) into (lower-name, raw value) pairs."""
    lines: list[bytes] = []
    for line in re.split(rb"\r?\n", head):
        if line[:1] in (b" ", b"\t") and lines:
            lines[-1] += b" " + line.strip()
        else:
            lines.append(line)
    out = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        try:
            lname = name.decode("ascii").strip().lower()
        except UnicodeDecodeError:
            continue
        out.append((lname, value.strip()))
    return out


def build_error_response(
    data: bytes,
    code: int,
    reason: str,
    source: tuple[str, int] | None = None,
) -> bytes | None:
    """Build ``SIP/2.0 <code> <reason>`` for the request in ``data``, or None.

    None means: do not answer (a response, an ACK (RFC 3261 §17.2.1: never answered),
    no request line, or no usable Via).  From, To, Call-ID and CSeq are copied when
    present and valid UTF-8, and left out otherwise.  When ``source``
    is given the top Via gets ``received`` (RFC 3261 §18.2.1) and a valueless
    ``rport`` is filled in (RFC 3581 §4).
    """
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0].lstrip(b"\r\n")
    first = head.split(b"\n", 1)[0]
    m = _REQ_LINE.match(first)
    if m is None or m.group(1).upper() == b"ACK":
        return None
    found: dict[str, list[str]] = {}
    for lname, raw in _header_lines(head):
        canon = _NEEDED.get(lname)
        if canon is None:
            continue
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            if canon == "Via":
                return None
            continue  # left out of the reply rather than echoed garbled
        if canon == "Via":
            # One Via header may carry several comma-separated values (§7.3.1).
            found.setdefault(canon, []).extend(v.strip() for v in value.split(",") if v.strip())
        elif canon not in found and value.strip():
            found[canon] = [value]
    if not found.get("Via"):
        return None  # §18.2.2: nowhere to send a response (also "Via: ," with no value)
    vias = found["Via"]
    if source is not None:
        vias[0] = _fix_top_via(vias[0], source)
    reason = reason.replace("\r", " ").replace("\n", " ")
    lines = [f"SIP/2.0 {code} {reason}"]
    lines += [f"Via: {v}" for v in vias]
    # §8.2.6.2 copies From, To, Call-ID and CSeq; one that is missing (the very fault
    # being reported) is left out: the client cannot match the reply to a transaction,
    # but the sender and anyone tracing the exchange see why it was refused.
    if "From" in found:
        lines.append(f"From: {found['From'][0]}")
    if "To" in found:
        to = found["To"][0]
        if code > 100 and not _TAG.search(to):
            to += ";tag=" + secrets.token_hex(8)  # RFC 3261 §8.2.6.2
        lines.append(f"To: {to}")
    for canon in ("Call-ID", "CSeq"):
        if canon in found:
            lines.append(f"{canon}: {found[canon][0]}")
    lines += ["Server: Plateau", "Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode("utf-8")


def _fix_top_via(via: str, source: tuple[str, int]) -> str:
    host, port = source
    m = re.match(r"\s*SIP\s*/\s*2\.0\s*/\s*\w+\s+(\[[^\]]+\]|[^:;\s]+)", via, re.IGNORECASE)
    if m is not None and m.group(1) != host and ";received=" not in via.lower():
        via += f";received={host.strip('[]')}"
    via = re.sub(r";rport(?=;|$)", f";rport={port}", via)
    return via


def reply_to_unparseable(
    data: bytes,
    source: tuple[str, int],
    send: Callable[[bytes, tuple[str, int]], None],
    code: int | None = None,
    reason: str | None = None,
) -> bool:
    """Answer a message the parser rejected; return True if a reply was sent.

    ``code``/``reason`` default to what ``problem_with(data)`` finds (513 for more
    than 64 KiB, 400 for invalid UTF-8) or ``400 Bad Request``.  The reply goes to
    ``source``, the address the bytes came from: answering the Via address of a
    message we could not parse would let a forged Via aim our replies elsewhere.
    """
    if code is None:
        problem = problem_with(data)
        code, reason = problem if problem is not None else (400, "Bad Request")
    reply = build_error_response(data, code, reason or "Bad Request", source)
    if reply is None:
        return False
    send(reply, source)
    return True
