"""Range and syntax checks of a SIP message through sippy's parser, before sippy handles it.

sippy parses header bodies lazily and, when one is malformed, prints a multi-line traceback
and drops the message (``SipTransactionManager.handleIncoming``); a number it parses is used
as is, so a Via port of 99999 later raises ``OverflowError`` in ``sendto`` (issue 12,
finding 1).  Here every header sippy's transaction layer and our router read is parsed once
and each number read from the network is range-checked where it enters (RFC 3261 §8.2,
§16.3, §20); a problem becomes ``(400, "Bad Request - <what> (<Header>)")`` for a request
(the client learns which header was wrong) and a drop for a response (never answered,
§8.1.3.3 / §18.1.2).
"""

from __future__ import annotations

from typing import Any

from sippy.Exceptions.SipParseError import SipParseError
from sippy.SipRequest import SipRequest
from sippy.SipResponse import SipResponse

__all__ = [
    "MAX_CSEQ",
    "MAX_EXPIRES",
    "MAX_FORWARDS",
    "check_request",
    "check_response",
    "port_ok",
    "request_verdict",
    "response_verdict",
]

#: RFC 3261 §8.1.1.5: the CSeq sequence number "MUST be expressible as a 32-bit unsigned
#: integer" and "MUST be less than 2**31" when a request is first created.
MAX_CSEQ = 2**31 - 1
#: RFC 3261 §20.22: Max-Forwards is an integer in the range 0-255.
MAX_FORWARDS = 255
#: RFC 3261 §20.19 / §25.1: Expires is delta-seconds, a 32-bit value.
MAX_EXPIRES = 2**32 - 1
# What sippy's parsers raise on malformed input (SipParseError: e.g. a Content-Length longer
# than the datagram's body, a 400 by RFC 3261 §18.3; NameError: sippy's SipAddress raises
# UnboundLocalError on a display name with an opening quote only, found by fuzz/sip_request).
PARSE_ERRORS = (SipParseError, ValueError, IndexError, TypeError, AttributeError, KeyError, UnicodeError,
                NameError)


_MISSING = " HF is missed"  # sippy's SipMsg: a plain Exception("To HF is missed") per mandatory header


def _parse(cls: type[SipRequest] | type[SipResponse], data: str) -> Any:
    """sippy's parse of `data`, or _Bad naming what is wrong with it.

    sippy raises a plain ``Exception`` for a missing Via, From, To or CSeq (RFC 3261 §8.1.1
    makes each mandatory), so that one message is caught by its text; every other exception
    it raises is one of PARSE_ERRORS.
    """
    try:
        return cls(data)
    except SipParseError as exc:
        if "body" in str(exc):  # "Missed SIP body, N bytes expected"
            raise _Bad("Body shorter than declared", "Content-Length") from exc
        raise _Bad("Malformed", "Request-Line or header line") from exc
    except PARSE_ERRORS as exc:
        raise _Bad("Malformed", "Request-Line or header line") from exc
    except Exception as exc:  # sippy's one plain Exception; anything else is re-raised
        text = str(exc)
        if type(exc) is Exception and text.endswith(_MISSING):
            raise _Bad("Missing header", text[: -len(_MISSING)]) from exc
        raise


class _Bad(Exception):
    """A header failed a check: ``what`` names the fault, ``header`` the header."""

    def __init__(self, what: str, header: str) -> None:
        super().__init__(what, header)
        self.what = what
        self.header = header


def port_ok(port: object, allow_none: bool = True) -> bool:
    """True for a transport port 1-65535 (RFC 3261 §25.1 ``port = 1*DIGIT``, a 16-bit value)."""
    if port is None or port == "":
        return allow_none
    return isinstance(port, int) and 0 < port <= 65535


def _bodies(msg: Any, name: str, header: str) -> list[Any]:
    try:
        return list(msg.getHFBodys(name))
    except PARSE_ERRORS as exc:
        raise _Bad("Malformed", header) from exc


def _number(body: Any, header: str, top: int) -> int:
    try:
        n = body.getNum()
    except PARSE_ERRORS as exc:
        raise _Bad("Malformed", header) from exc
    if not isinstance(n, int) or not 0 <= n <= top:
        raise _Bad("Out of range", header)
    return int(n)


def _url_ok(url: Any, header: str) -> None:
    if not port_ok(getattr(url, "port", None)):
        raise _Bad("Port out of range", header)


def _check_vias(msg: Any) -> None:
    vias = _bodies(msg, "via", "Via")
    if not vias:
        raise _Bad("Missing", "Via")
    for via in vias:
        try:
            host, port = via.getAddr()
            rport = via.params.get("rport")
        except PARSE_ERRORS as exc:
            raise _Bad("Malformed", "Via") from exc
        if not host or not port_ok(port):
            raise _Bad("Sent-by port out of range" if host else "Malformed", "Via")
        # RFC 3581 §4: a request carries a valueless rport; a value must still be a port.
        if rport is not None and not (rport.isdigit() and port_ok(int(rport))):
            raise _Bad("rport out of range", "Via")


def _check_common(msg: Any) -> None:
    """The headers every message's transaction id is built from (RFC 3261 §17.1.3, §17.2.3)."""
    _check_vias(msg)
    for name, header in (("from", "From"), ("to", "To")):
        bodies = _bodies(msg, name, header)
        if len(bodies) != 1:
            raise _Bad("Exactly one required", header)
        try:
            bodies[0].getTag()
            url = bodies[0].getUrl()
        except PARSE_ERRORS as exc:
            raise _Bad("Malformed", header) from exc
        _url_ok(url, header)
    if len(_bodies(msg, "call-id", "Call-ID")) != 1:
        raise _Bad("Exactly one required", "Call-ID")
    cseqs = _bodies(msg, "cseq", "CSeq")
    if len(cseqs) != 1:
        raise _Bad("Exactly one required", "CSeq")
    try:
        num = cseqs[0].getCSeqNum()
    except PARSE_ERRORS as exc:
        raise _Bad("Malformed", "CSeq") from exc
    if not 0 <= num <= MAX_CSEQ:
        raise _Bad("Out of range", "CSeq")
    for contact in _bodies(msg, "contact", "Contact"):
        if contact.asterisk:
            continue
        try:
            url = contact.getUrl()
            expires = contact.address.getParam("expires")
        except PARSE_ERRORS as exc:
            raise _Bad("Malformed", "Contact") from exc
        _url_ok(url, "Contact")
        if expires is not None and not (expires.isdigit() and int(expires) <= MAX_EXPIRES):
            raise _Bad("expires out of range", "Contact")
    for body in _bodies(msg, "expires", "Expires"):
        _number(body, "Expires", MAX_EXPIRES)


def check_request(data: str) -> tuple[SipRequest | None, tuple[int, str] | None]:
    """Parse and check a request: ``(request, None)``, or ``(None, (400, reason))``."""
    try:
        req = _parse(SipRequest, data)
    except _Bad as bad:
        if bad.what == "Malformed":
            return None, (400, "Bad Request - Malformed Request-Line or header line")
        return None, (400, f"Bad Request - {bad.what} ({bad.header})")
    try:
        _check_common(req)
        _url_ok(req.getRURI(), "Request-URI")
        for body in _bodies(req, "max-forwards", "Max-Forwards"):
            _number(body, "Max-Forwards", MAX_FORWARDS)
    except _Bad as bad:
        return None, (400, f"Bad Request - {bad.what} ({bad.header})")
    return req, None


def check_response(data: str) -> tuple[SipResponse | None, str | None]:
    """Parse and check a response: ``(response, None)``, or ``(None, why it must be dropped)``."""
    try:
        resp = _parse(SipResponse, data)
        code = resp.getSCode()[0]
    except _Bad as bad:
        if bad.what == "Malformed":
            return None, "malformed Status-Line or header line"
        return None, f"{bad.what.lower()} {bad.header}"
    except PARSE_ERRORS:
        return None, "malformed Status-Line or header line"
    if not 100 <= code <= 699:
        return None, "status code out of range"  # RFC 3261 §7.2: 1xx-6xx
    try:
        _check_common(resp)
    except _Bad as bad:
        return None, f"{bad.what.lower()} {bad.header}"
    return resp, None


def request_verdict(data: str) -> tuple[int, str] | None:
    """``(400, reason)`` if sippy cannot parse the request or a number is out of range, else None."""
    return check_request(data)[1]


def response_verdict(data: str) -> str | None:
    """Why a response must be dropped (sippy cannot parse it, or a number is out of range), else None."""
    return check_response(data)[1]
