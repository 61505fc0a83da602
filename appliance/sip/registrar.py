"""SIP registrar (RFC 3261 §10.3) for the appliance's own extensions.

``Registrar.handle_register(req)`` takes a parsed sippy ``SipRequest`` and returns the
sippy ``SipResponse`` to send (built with ``req.genResponse``).  Typical use in the
engine's request callback::

    return (registrar.handle_register(req), None, None)

Decisions (and why):

* Unknown extensions get the same 401 challenge as known ones, and a wrong
  password for an unknown user the same 401 as for a known user: answering 404
  would let a scanner enumerate extensions (Asterisk's ``alwaysauthreject``).
* An authenticated user may only register its own extension (To user == digest
  username), else 403 (RFC 3261 §10.3 step 3 "authorized to modify registrations").
* A credential rejected only because its nonce is stale is answered 401 with
  ``stale=true`` and is not counted as a failure: the client knows the password.
* The source address, port and transport of the REGISTER are recorded with each
  binding (RFC 3581 ``received``/``rport`` fix-up): requests to the phone go to
  where its REGISTER came from, which is right behind NAT and, for TCP, is the
  registering connection (RFC 5626 flow reuse).
* Out-of-order refreshes (same Call-ID, CSeq not higher, §10.3 step 7) abort the
  whole request with 400, like Kamailio ("Invalid CSeq number").
* Beyond ``max_contacts`` the bindings closest to expiry are dropped (a phone that
  changed address should not be locked out until its old binding expires).
* A REGISTER's Path (RFC 3327) is stored with its bindings, whether or not the phone says
  ``Supported: path`` (phones rarely do; the proxy that added it needs it all the same, like
  Kamailio's registrar in ``path_mode`` 0/1), and echoed in the 200 when it does (§5.3).
  Requests to such a contact go to the path's first hop with the path as their Route set
  (sip/path.py); behind the site's front door, that is Kamailio.
* Behind a trusted front door (sip/front_door.py) the phone's own address, not Kamailio's,
  is the one the scanner guard counts and the binding records.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import formatdate

from sippy.SipHeader import SipHeader
from sippy.SipResponse import SipResponse

from appliance.sip import path as sip_path
from appliance.sip.digest import DigestAuthenticator, parse_digest
from appliance.sip.front_door import FrontDoors
from appliance.sip.guard import ScannerGuard
from appliance.sip.headers import raw_header

log = logging.getLogger(__name__)

__all__ = ["Binding", "Registrar"]

_PARSE_ERRORS = (ValueError, IndexError, TypeError, AttributeError, KeyError)


@dataclass(frozen=True)
class Binding:
    """One registered contact of an address-of-record (an extension)."""

    aor: str
    contact_uri: str
    source: tuple[str, int]
    transport: str
    expires_at: float
    user_agent: str | None
    call_id: str
    cseq: int
    path: str = ""  # RFC 3327 Path values, the route set to this contact ('' = direct)

    @property
    def target(self) -> tuple[tuple[str, int], str]:
        """Where to send requests for this contact: the path's first hop, else the REGISTER's
        source (NAT-safe)."""
        if self.path:
            try:
                hop = sip_path.first_hop(self.path)
            except ValueError:
                hop = None  # checked when stored; a row written by hand falls back to the source
            if hop is not None:
                return hop
        return (self.source, self.transport)


def _raw(header: SipHeader) -> str:
    body = header.body
    return str(body) if getattr(body, "parsed", False) else body.body


class _Reject(Exception):
    def __init__(self, code: int, reason: str, headers: list[tuple[str, str]] | None = None):
        super().__init__(reason)
        self.code, self.reason, self.headers = code, reason, headers or []


class Registrar:
    """Location service for the appliance's extensions, fed by REGISTER requests."""

    def __init__(
        self,
        authenticator: DigestAuthenticator,
        lookup_secret: Callable[[str], str | None],
        guard: ScannerGuard,
        persist: Callable[[Binding], None],
        forget: Callable[[str, str], None],
        min_expires: int = 60,
        max_expires: int = 3600,
        default_expires: int = 600,
        max_contacts: int = 10,
        clock: Callable[[], float] = time.time,
        site_contacts: Callable[[str], list[Binding] | None] | None = None,
        front_doors: FrontDoors | None = None,
    ) -> None:
        if not 0 < min_expires <= default_expires <= max_expires:
            raise ValueError("need 0 < min_expires <= default_expires <= max_expires")
        if max_contacts < 1:
            raise ValueError("max_contacts must be >= 1")
        self.auth = authenticator
        self.lookup_secret = lookup_secret
        self.guard = guard
        self.persist = persist
        self.forget = forget
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.default_expires = default_expires
        self.max_contacts = max_contacts
        self._clock = clock
        # With a shared store (several engines on one site) another engine may hold a phone's
        # REGISTER: the site's bindings are read from the store, ours are the fallback when the
        # store is away (``site_contacts`` answers None; our writes are then deferred, so our
        # memory is the fresher copy).
        self._site_contacts = site_contacts
        self.front_doors = front_doors or FrontDoors()
        self._bindings: dict[str, dict[str, Binding]] = {}

    # -- location service ------------------------------------------------------------

    def contacts(self, aor: str) -> list[Binding]:
        """Unexpired bindings of ``aor`` (the site's, when shared), latest expiry first."""
        now = self._clock()
        bindings: Iterable[Binding] = self._bindings.get(aor, {}).values()
        site = self._site_contacts(aor) if self._site_contacts is not None else None
        if site is not None:  # None: the store is away
            bindings = site
        live = [b for b in bindings if b.expires_at > now]
        return sorted(live, key=lambda b: -b.expires_at)

    def all_bindings(self) -> list[Binding]:
        """Every unexpired binding."""
        now = self._clock()
        return [b for per in self._bindings.values() for b in per.values() if b.expires_at > now]

    def restore(self, bindings: Iterable[Binding]) -> None:
        """Reload persisted bindings after a restart (expired ones are skipped)."""
        now = self._clock()
        for b in bindings:
            if b.expires_at > now:
                self._bindings.setdefault(b.aor, {})[b.contact_uri] = b

    def expire(self, now: float | None = None) -> list[Binding]:
        """Drop expired bindings (call periodically); ``forget`` is called for each."""
        now = self._clock() if now is None else now
        gone = []
        for aor in list(self._bindings):
            per = self._bindings[aor]
            for uri in [u for u, b in per.items() if b.expires_at <= now]:
                gone.append(per.pop(uri))
            if not per:
                del self._bindings[aor]
        for b in gone:
            self.forget(b.aor, b.contact_uri)
        return gone

    def drop_source(self, source: tuple[str, int], transport: str = "tcp") -> list[Binding]:
        """Remove bindings bound to a flow that closed (RFC 5626 §5.3); returns them."""
        gone = []
        for aor in list(self._bindings):
            per = self._bindings[aor]
            for uri in [u for u, b in per.items()
                        if b.source == source and b.transport == transport]:
                gone.append(per.pop(uri))
            if not per:
                del self._bindings[aor]
        for b in gone:
            self.forget(b.aor, b.contact_uri)
        return gone

    # -- REGISTER processing ---------------------------------------------------------

    def handle_register(self, req) -> SipResponse:
        """Process a REGISTER and return the sippy ``SipResponse`` to send (never None).

        Blocked sources should have been dropped by the transaction manager already
        (``PlateauTransactionManager(guard=...)``); if one gets here it gets 403.
        """
        src = self.front_doors.source(req)
        if self.guard.is_blocked(src.host):
            return self._response(req, 403, "Forbidden", [])
        try:
            aor = self._authorize(req, src.host)
            headers = self._update(req, aor, (src.host, src.port), src.transport)
        except _Reject as rej:
            return self._response(req, rej.code, rej.reason, rej.headers)
        return self._response(req, 200, "OK", headers)

    def _response(self, req, code: int, reason: str,
                  headers: list[tuple[str, str]]) -> SipResponse:
        resp = req.genResponse(code, reason)
        for name, value in headers:
            resp.appendHeader(raw_header(name, value))
        return resp

    def _authorize(self, req, src_host: str) -> str:
        try:
            to_user = req.getHFBody("to").getUrl().username
        except _PARSE_ERRORS:
            raise _Reject(400, "Bad Request - Invalid To") from None
        if not to_user:
            raise _Reject(400, "Bad Request - No user in To")
        creds = [_raw(h) for h in req.getHFs("authorization")]
        # One Authorization per realm may be present (§22.3): use the one for ours.
        mine = [c for c in creds if (parse_digest(c) or {}).get("realm") == self.auth.realm]
        mine = mine or creds
        if not mine:
            # First REGISTER of a dialogue with the registrar: not a failure (§22.1).
            raise _Reject(401, "Unauthorized", self.auth.challenge())
        res = self.auth.verify("REGISTER", mine[0], self.lookup_secret, str(req.getRURI()))
        if res.uri_mismatch:
            self.guard.record_failure(src_host, f"REGISTER {to_user}: {res.reason}")
            raise _Reject(400, "Bad Request - Digest uri does not match the Request-URI")
        if not res.ok:
            if not res.stale:
                self.guard.record_failure(src_host, f"REGISTER {to_user}: {res.reason}")
            raise _Reject(401, "Unauthorized", self.auth.challenge(stale=res.stale))
        self.guard.record_success(src_host)
        if res.username != to_user:
            raise _Reject(403, "Forbidden - Not Your Extension")
        return to_user

    def _expires_header(self, req) -> int | None:
        hfs = req.getHFs("expires")
        if not hfs:
            return None
        value = _raw(hfs[0]).strip()
        if not value.isdigit():
            raise _Reject(400, "Bad Request - Invalid Expires")
        return int(value)

    def _update(self, req, aor: str, source: tuple[str, int], transport: str):
        now = self._clock()
        call_id = str(req.getHFBody("call-id"))
        cseq = req.getHFBody("cseq").getCSeqNum()
        hdr_expires = self._expires_header(req)
        ua_hfs = req.getHFs("user-agent")
        user_agent = _raw(ua_hfs[0]) if ua_hfs else None
        try:
            contacts = req.getHFBodys("contact")
        except _PARSE_ERRORS:
            raise _Reject(400, "Bad Request - Invalid Contact") from None
        path = self._path(req)
        current = self._bindings.get(aor, {})

        if any(c.asterisk for c in contacts):
            # RFC 3261 §10.3 step 6: "*" only alone and with Expires: 0.
            if len(contacts) != 1 or hdr_expires != 0:
                raise _Reject(400, "Bad Request - Invalid Wildcard Contact")
            for b in current.values():
                if b.call_id == call_id and cseq <= b.cseq:
                    raise _Reject(400, "Bad Request - Invalid CSeq number")
            removed = list(current.values())
            self._bindings.pop(aor, None)
            for b in removed:
                self.forget(aor, b.contact_uri)
            log.info("REGISTER %s: all %d bindings removed", aor, len(removed))
            return self._contact_headers(aor)

        changes: list[tuple[str, int]] = []  # (contact uri, expires)
        for c in contacts:
            try:
                uri = str(c.getUrl())
                exp_param = c.address.getParam("expires")
            except _PARSE_ERRORS:
                raise _Reject(400, "Bad Request - Invalid Contact") from None
            if exp_param is not None:
                if not exp_param.strip().isdigit():
                    raise _Reject(400, "Bad Request - Invalid Contact expires")
                expires = int(exp_param)
            elif hdr_expires is not None:
                expires = hdr_expires
            else:
                expires = self.default_expires
            if 0 < expires < self.min_expires:
                # §10.3 step 7 and §20.23: too brief, tell the UA our minimum.
                raise _Reject(423, "Interval Too Brief", [("Min-Expires", str(self.min_expires))])
            old = current.get(uri)
            if old is not None and old.call_id == call_id and cseq <= old.cseq:
                raise _Reject(400, "Bad Request - Invalid CSeq number")
            changes.append((uri, min(expires, self.max_expires)))

        per = self._bindings.setdefault(aor, {})
        for uri, expires in changes:
            if expires == 0:
                if per.pop(uri, None) is not None:
                    self.forget(aor, uri)
                continue
            b = Binding(aor, uri, source, transport, now + expires, user_agent, call_id, cseq, path)
            per[uri] = b
            self.persist(b)
        live = sorted(per.values(), key=lambda b: b.expires_at)
        for b in live[: max(0, len(live) - self.max_contacts)]:
            del per[b.contact_uri]
            self.forget(aor, b.contact_uri)
        if not per:
            del self._bindings[aor]
        headers = self._contact_headers(aor)
        if path and "path" in self._supported(req):
            headers.append(("Path", path))  # RFC 3327 §5.3: the path we stored, for the UA to see
        return headers

    def _path(self, req) -> str:
        """The REGISTER's Path as one string ('' without one); 400 when a value is no SIP URI."""
        try:
            path = sip_path.join([_raw(h) for h in req.getHFs("path")])
            sip_path.sip_routes(path)
        except (ValueError, *_PARSE_ERRORS):
            raise _Reject(400, "Bad Request - Invalid Path") from None
        return path

    def _supported(self, req) -> set[str]:
        tags: set[str] = set()
        for h in req.getHFs("supported"):
            tags.update(t.strip().lower() for t in _raw(h).split(","))
        return tags

    def _contact_headers(self, aor: str) -> list[tuple[str, str]]:
        # §10.3 step 8: the 200 lists every current binding with its remaining time.
        now = self._clock()
        out = [("Contact", f"<{b.contact_uri}>;expires={max(0, int(b.expires_at - now + 0.5))}")
               for b in self.contacts(aor)]
        out.append(("Date", formatdate(now, usegmt=True)))
        return out
