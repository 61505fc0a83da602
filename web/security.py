"""Response hardening for every page: security headers, and where a login may send the browser.

Headers (on every response):
- Content-Security-Policy: scripts only from our own /static (no inline script exists), no
  framing (`frame-ancestors`, CSP 3 §6.4.2; X-Frame-Options for older browsers, RFC 7034);
- X-Content-Type-Options: nosniff, so an uploaded file is never run as a script;
- Referrer-Policy: same-origin, so URLs with ids never leave the appliance;
- Strict-Transport-Security (RFC 6797 §7.2: only over a secure transport) when served by TLS.
"""
from __future__ import annotations

from flask import Response, abort, request

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HSTS_SECONDS = 180 * 86400


def security_headers(resp: Response) -> Response:
    headers = resp.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", f"max-age={HSTS_SECONDS}")
    return resp


def safe_next(target: str, default: str) -> str:
    """`target` if it is a path on this site, else `default`; 400 for control characters.

    Browsers drop tabs and newlines from URLs and read a backslash as a slash (WHATWG URL
    standard, §4.4 "remove all ASCII tab or newline"; special-scheme "\\"), so "/\\t/evil" and
    "/\\\\evil" become "//evil", another host. Only "/" followed by something that is not a
    slash or backslash is ours; a control character is refused outright (a CR/LF would also
    split the Location header).
    """
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        abort(400, description="next: the address to go to after login has control characters")
    if not target.startswith("/") or target[1:2] in ("/", "\\"):
        return default
    return target
