"""HTTP Digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760).

Design decisions:

* Nonces are self-validating: ``b64(ts_ms | random | HMAC-SHA256(key, realm | ts_ms | random))``.
  No table of issued nonces is needed and, as long as the engine is given the same
  ``key`` (persist it in the store), a restart invalidates nothing.  A nonce whose MAC
  does not match (key rotated) or whose age exceeds ``nonce_ttl`` is *stale*: if the
  response is nevertheless correct for that nonce, the client knows the password and
  only needs a fresh nonce, so ``AuthResult.stale`` is True (RFC 7616 §3.3 ``stale``).
* Algorithms offered and accepted: SHA-256 and MD5, SHA-256 first (RFC 8760 §2.4).
  ``-sess`` variants are not offered and are therefore rejected (a client may only
  use an algorithm from a challenge it received, RFC 7616 §3.4).
* ``qop=auth`` is required: without ``nc`` there is no replay protection.  auth-int
  is not offered (SIP UAs rarely implement it).
* Reuse: ``nc`` counts the requests a client has sent with one nonce (RFC 7616 §3.4,
  RFC 2617 §3.2.2), so a client that caches credentials sends the next request with
  the same nonce and nc+1 and saves the 401/407 round trip.  That is accepted for at
  most ``nonce_ttl`` seconds and ``max_nonce_uses`` requests; then the nonce is stale
  and the client gets a fresh one with ``stale=true`` (RFC 7616 §3.3).
* Replay: per nonce, the highest ``nc`` and a 64-entry sliding bitmap of recently
  seen counts (the IPsec anti-replay window, RFC 4303 §3.4.3) so reordered UDP
  retransmissions with distinct nc still pass while any repeat is rejected.  Memory
  is bounded by ``max_tracked_nonces``; a nonce evicted from the table (or older than
  the oldest evicted one) is answered as stale, never accepted blindly.
* A nonce belongs to the first user who answers it correctly: each challenge carries
  a fresh nonce, so another user presenting it copied it from someone else's traffic.
  That user knows their own password (the response was correct), so it is stale, not
  a failure: a fresh challenge follows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from sippy.SipURL import SipURL

__all__ = [
    "ALGORITHMS",
    "AuthResult",
    "DigestAuthenticator",
    "compute_response",
    "parse_digest",
]

_HASHES: dict[str, Callable[[bytes], hashlib._Hash]] = {
    "SHA-256": hashlib.sha256,
    "MD5": hashlib.md5,
}
#: Algorithms in the order they are offered (RFC 8760 §2.4: most preferred first).
ALGORITHMS: tuple[str, ...] = ("SHA-256", "MD5")

_PARAM_RE = re.compile(r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*)\s*(?:,|$)')
_NC_WINDOW = 64
_TS_LEN = 8
_RAND_LEN = 8
_MAC_LEN = 16


@dataclass(frozen=True)
class AuthResult:
    """Outcome of checking one Authorization / Proxy-Authorization header."""

    ok: bool
    username: str | None
    stale: bool
    reason: str
    algorithm: str | None = None
    #: The credentials were computed for another resource than the Request-URI: not a
    #: wrong password but a malformed (or replayed) request, answered 400, not 401/407.
    uri_mismatch: bool = False


def same_uri(digest_uri: str, request_uri: str) -> bool:
    """True when the digest ``uri`` names the Request-URI (RFC 2617 §3.2.2.5, RFC 7616 §3.4.6).

    Both are compared in sippy's canonical form, since sippy does not keep the request
    line's text; a ``uri`` that is not a SIP URI never matches.
    """
    if digest_uri == request_uri:
        return True
    try:
        return str(SipURL(digest_uri)) == str(SipURL(request_uri))
    except (ValueError, IndexError, TypeError, AttributeError, NameError):
        return False


def _h(algorithm: str, data: str) -> str:
    return _HASHES[algorithm](data.encode("utf-8")).hexdigest()


def compute_response(
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    nc: str | None = None,
    cnonce: str | None = None,
    qop: str | None = None,
) -> str:
    """The ``response`` value of RFC 7616 §3.4.1 (qop=auth) or RFC 2069 (no qop)."""
    if algorithm not in _HASHES:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    ha1 = _h(algorithm, f"{username}:{realm}:{password}")
    ha2 = _h(algorithm, f"{method}:{uri}")
    if qop:
        return _h(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _h(algorithm, f"{ha1}:{nonce}:{ha2}")


def parse_digest(header_value: str) -> dict[str, str] | None:
    """Parse ``Digest k=v, k="v"`` into a dict with lower-case keys; None if not Digest."""
    scheme, _, rest = header_value.strip().partition(" ")
    if scheme.lower() != "digest" or not rest.strip():
        return None
    params: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        m = _PARAM_RE.match(rest, pos)
        if m is None or m.end() == pos:
            return None
        name, value = m.group(1).lower(), m.group(2)
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        if name in params:
            return None  # RFC 7616 §3.4: each parameter at most once
        params[name] = value
        pos = m.end()
    return params


class _NcWindow:
    """What is remembered of one nonce: its owner, its uses and its recent counts."""

    __slots__ = ("bits", "top", "uses", "user")

    def __init__(self, user: str) -> None:
        self.top = 0
        self.bits = 0
        self.uses = 0
        self.user = user

    def accept(self, nc: int) -> bool:
        """Record ``nc``; False if it was already seen or fell out of the window."""
        if nc > self.top:
            shift = nc - self.top
            self.bits = ((self.bits << shift) | 1) & ((1 << _NC_WINDOW) - 1)
            self.top = nc
            return True
        offset = self.top - nc
        if offset >= _NC_WINDOW or self.bits & (1 << offset):
            return False
        self.bits |= 1 << offset
        return True


class DigestAuthenticator:
    """Issue digest challenges and verify credentials for one realm."""

    def __init__(
        self,
        realm: str,
        key: bytes,
        nonce_ttl: float = 300,
        clock: Callable[[], float] = time.time,
        max_tracked_nonces: int = 100_000,
        algorithms: tuple[str, ...] = ALGORITHMS,
        max_nonce_uses: int = 1000,
    ) -> None:
        if not key or len(key) < 16:
            raise ValueError("digest key must be at least 16 bytes")
        unknown = [a for a in algorithms if a not in _HASHES]
        if unknown or not algorithms:
            raise ValueError(f"unsupported digest algorithms: {unknown or algorithms}")
        self.realm = realm
        self.nonce_ttl = nonce_ttl
        self.algorithms = tuple(algorithms)
        self._key = bytes(key)
        self._clock = clock
        self._max_tracked = max_tracked_nonces
        if max_nonce_uses < 1:
            raise ValueError("max_nonce_uses must be at least 1")
        self.max_nonce_uses = max_nonce_uses
        self._nc: OrderedDict[str, _NcWindow] = OrderedDict()
        self._evicted_ts = -1
        # Opaque is constant per realm and key: it only has to come back unchanged.
        self.opaque = base64.urlsafe_b64encode(
            hmac.new(self._key, b"opaque:" + realm.encode(), hashlib.sha256).digest()[:12]
        ).decode()

    # -- nonces -------------------------------------------------------------

    def _mac(self, raw: bytes) -> bytes:
        msg = self.realm.encode() + b"\0" + raw
        return hmac.new(self._key, msg, hashlib.sha256).digest()[:_MAC_LEN]

    def new_nonce(self) -> str:
        """A fresh self-validating nonce."""
        ts_ms = int(self._clock() * 1000)
        raw = ts_ms.to_bytes(_TS_LEN, "big") + os.urandom(_RAND_LEN)
        return base64.urlsafe_b64encode(raw + self._mac(raw)).decode().rstrip("=")

    def _nonce_ts(self, nonce: str) -> int | None:
        """Issue time (ms) of a nonce we made, or None if it is not ours."""
        try:
            blob = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (ValueError, TypeError):
            return None
        if len(blob) != _TS_LEN + _RAND_LEN + _MAC_LEN:
            return None
        raw, mac = blob[: _TS_LEN + _RAND_LEN], blob[_TS_LEN + _RAND_LEN :]
        if not hmac.compare_digest(mac, self._mac(raw)):
            return None
        return int.from_bytes(raw[:_TS_LEN], "big")

    # -- challenge ----------------------------------------------------------

    def challenge(self, stale: bool = False, proxy: bool = False) -> list[tuple[str, str]]:
        """Header (name, value) pairs for a 401 (or 407 when ``proxy``), SHA-256 first."""
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        nonce = self.new_nonce()
        out = []
        for alg in self.algorithms:
            value = (
                f'Digest realm="{self.realm}", nonce="{nonce}", opaque="{self.opaque}", '
                f'algorithm={alg}, qop="auth"'
            )
            if stale:
                value += ", stale=true"
            out.append((name, value))
        return out

    # -- verification ---------------------------------------------------------

    def verify(
        self,
        method: str,
        header_value: str,
        lookup_secret: Callable[[str], str | None],
        request_uri: str | None = None,
    ) -> AuthResult:
        """Check one Authorization header value for a request of ``method``.

        ``lookup_secret(username)`` returns the plain password or None for an unknown
        user.  When ``request_uri`` is given the ``uri`` parameter must equal it
        (RFC 7616 §3.4.6).  ``ok`` is True only for a fresh, correct, non-replayed
        response; ``stale`` is True when only the nonce is at fault.
        """
        p = parse_digest(header_value)
        if p is None:
            return AuthResult(False, None, False, "not a Digest credential")
        username = p.get("username")
        if not username:
            return AuthResult(False, None, False, "missing username")
        for field in ("realm", "nonce", "uri", "response"):
            if not p.get(field):
                return AuthResult(False, username, False, f"missing {field}")
        if p["realm"] != self.realm:
            return AuthResult(False, username, False, "wrong realm")
        alg = p.get("algorithm", "MD5")  # absent means MD5 (RFC 7616 §3.3)
        alg = {"md5": "MD5", "sha-256": "SHA-256"}.get(alg.lower(), alg)
        if alg not in self.algorithms:
            return AuthResult(False, username, False, f"unsupported algorithm {alg}")
        if request_uri is not None and not same_uri(p["uri"], request_uri):
            return AuthResult(False, username, False, "uri does not match the Request-URI", alg,
                              uri_mismatch=True)
        qop = p.get("qop")
        if qop != "auth":
            return AuthResult(False, username, False, "qop=auth required", alg)
        nc_s, cnonce = p.get("nc", ""), p.get("cnonce", "")
        if not cnonce or not re.fullmatch(r"[0-9a-fA-F]{8}", nc_s):
            return AuthResult(False, username, False, "bad nc/cnonce", alg)
        if "opaque" in p and p["opaque"] != self.opaque:
            return AuthResult(False, username, False, "opaque mismatch", alg)
        password = lookup_secret(username)
        if password is None:
            return AuthResult(False, username, False, "unknown user", alg)
        expected = compute_response(
            alg, username, self.realm, password, method, p["uri"], p["nonce"], nc_s, cnonce, qop
        )
        if not hmac.compare_digest(expected.lower(), p["response"].lower()):
            return AuthResult(False, username, False, "wrong response", alg)
        # The client knows the password from here on: nonce problems are "stale".
        ts = self._nonce_ts(p["nonce"])
        now_ms = int(self._clock() * 1000)
        if ts is None:
            return AuthResult(False, username, True, "nonce not issued by us", alg)
        if now_ms - ts > self.nonce_ttl * 1000 or ts > now_ms + 5000:
            return AuthResult(False, username, True, "nonce expired", alg)
        refused = self._accept_nc(p["nonce"], ts, int(nc_s, 16), username)
        if refused:
            return AuthResult(False, username, True, refused, alg)
        return AuthResult(True, username, False, "ok", alg)

    def _accept_nc(self, nonce: str, ts: int, nc: int, username: str) -> str | None:
        """Record one use of ``nonce`` by ``username``; the reason it is refused, or None."""
        win = self._nc.get(nonce)
        if win is None:
            if ts <= self._evicted_ts:
                return "nonce count replayed"  # its history is gone: force a new nonce
            win = self._nc[nonce] = _NcWindow(username)
            self._trim()
        else:
            self._nc.move_to_end(nonce)
        if win.user != username:
            return "nonce issued to another user"
        if win.uses >= self.max_nonce_uses:
            return "nonce used too often"
        if not win.accept(nc):
            return "nonce count replayed"
        win.uses += 1
        return None

    def _trim(self) -> None:
        now_ms = int(self._clock() * 1000)
        ttl_ms = int(self.nonce_ttl * 1000)
        # Entries are in first-use order, which tracks issue order closely enough.
        while self._nc:
            nonce, _ = next(iter(self._nc.items()))
            ts = self._nonce_ts(nonce) or 0
            if now_ms - ts > ttl_ms:
                self._nc.popitem(last=False)
            elif len(self._nc) > self._max_tracked:
                self._nc.popitem(last=False)
                self._evicted_ts = max(self._evicted_ts, ts)
            else:
                break
