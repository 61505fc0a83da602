"""Outbound registration of SIP trunks to their carriers (RFC 3261 §10.2, digest as a UAC).

Our own small state machine rather than sippy's SipRegistrationAgent: that agent re-registers
only when the binding has already expired, which leaves the trunk unregistered (and inbound
calls refused by the carrier) for a moment at every expiry. RFC 3261 §10.2.4 wants the refresh
before expiry; we refresh at 80 % of what the registrar granted.
"""
from __future__ import annotations

import enum
import logging
import secrets
import time
from typing import Any

from sippy.SipCallId import SipCallId
from sippy.SipContact import SipContact
from sippy.SipCSeq import SipCSeq
from sippy.SipAddress import SipAddress
from sippy.SipFrom import SipFrom
from sippy.SipHeader import SipHeader
from sippy.SipRequest import SipRequest
from sippy.SipResponse import SipResponse
from sippy.SipTo import SipTo
from sippy.SipURL import SipURL
from sippy.Time.Timeout import Timeout

from appliance.store.db import Store
from appliance.store.models import Trunk

log = logging.getLogger("plateau.sip")
REFRESH_SHARE = 0.8  # refresh when this share of the granted time has passed
RETRY_SECONDS = 60.0  # after a failure (RFC 3261 §10.2.4 leaves it to us; carriers dislike storms)
MAX_CHALLENGES = 2  # a second challenge in a row means the credentials are wrong


class TrunkRegState(enum.Enum):
    REGISTERING = "registering"
    REGISTERED = "registered"
    FAILED = "failed"
    STOPPED = "stopped"


class TrunkRegistration:
    """One trunk's binding at its carrier, refreshed before it expires."""

    def __init__(self, global_config: dict[str, Any], trunk: Trunk) -> None:
        self.global_config = global_config
        self.trunk = trunk
        self.state = TrunkRegState.REGISTERING
        self.detail = ""
        self.since = time.time()
        self.expires_at: float | None = None
        self.call_id = SipCallId()  # one Call-ID for all refreshes (RFC 3261 §10.2.4)
        self.cseq = SipCSeq.genRandCSeq()
        self.from_tag = secrets.token_hex(8)
        self.challenges = 0
        self.timer: Timeout | None = None

    def _aor(self) -> tuple[SipURL, SipURL]:
        """(address of record, Request-URI): the registrar's domain, with the trunk's port
        when the domain is the trunk's own address."""
        trunk = self.trunk
        domain = trunk.from_domain or trunk.host
        port = trunk.port if domain == trunk.host else None
        user = trunk.username or trunk.name
        return SipURL(username=user, host=domain, port=port), SipURL(host=domain, port=port)

    def _request(self) -> SipRequest:
        trunk = self.trunk
        aor, ruri = self._aor()
        fr0m = SipFrom(address=SipAddress(url=aor.getCopy()))
        fr0m.setTag(self.from_tag)
        contact_url = SipURL(username=aor.username, host=self.global_config["_sip_address"],
                             port=self.global_config["_sip_port"])
        self.cseq += 1
        req = SipRequest(method="REGISTER", ruri=ruri, fr0m=fr0m, to=SipTo(address=SipAddress(url=aor)),
                         contact=SipContact(address=SipAddress(url=contact_url)), callid=self.call_id,
                         cseq=self.cseq, target=((trunk.host, trunk.port), trunk.transport))
        req.appendHeader(SipHeader(name="expires", bodys=str(trunk.register_expires)))
        return req

    def start(self, auth: SipHeader | None = None) -> None:
        """Send a REGISTER (with credentials when answering a challenge)."""
        if self.state == TrunkRegState.STOPPED:
            return
        self.timer = None
        req = self._request()
        if auth is not None:
            req.appendHeader(auth)
        self.global_config["_sip_tm"].newTransaction(req, self._response)

    def stop(self) -> None:
        self.state = TrunkRegState.STOPPED
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _schedule(self, delay: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = Timeout(self.start, delay)

    def _response(self, resp: SipResponse) -> None:
        if self.state == TrunkRegState.STOPPED:
            return
        code, reason = resp.getSCode()
        if code < 200:
            return
        if 200 <= code < 300:
            self.challenges = 0
            granted = self._granted(resp)
            if self.state != TrunkRegState.REGISTERED:
                log.info("trunk %s registered for %d s", self.trunk.name, granted)
            self.state, self.detail, self.since = TrunkRegState.REGISTERED, "", time.time()
            self.expires_at = time.time() + granted
            self._schedule(max(1.0, granted * REFRESH_SHARE))
            return
        if code in (401, 407) and self.challenges < MAX_CHALLENGES and self.trunk.secret:
            auth = self._answer_challenge(resp, code)
            if auth is not None:
                self.challenges += 1
                self.start(auth)
                return
        self.challenges = 0
        log.warning("trunk %s registration failed: %d %s", self.trunk.name, code, reason)
        self.state, self.detail, self.since = TrunkRegState.FAILED, f"{code} {reason}", time.time()
        self.expires_at = None
        self._schedule(RETRY_SECONDS)

    def _granted(self, resp: SipResponse) -> int:
        """The expiry the registrar granted our contact (RFC 3261 §10.2.4: Contact param first)."""
        for contact in resp.getHFBodys("contact"):
            url = contact.getUrl()
            if url.username == (self.trunk.username or self.trunk.name) and "expires" in contact.address.params:
                return int(contact.address.params["expires"])
        if resp.countHFs("expires") > 0:
            return int(resp.getHFBody("expires").getNum())
        return self.trunk.register_expires

    def _answer_challenge(self, resp: SipResponse, code: int) -> SipHeader | None:
        name = "www-authenticate" if code == 401 else "proxy-authenticate"
        for challenge in resp.getHFBodys(name):
            supported, qop = challenge.supportedAlgorithm()
            if supported:
                _aor, ruri = self._aor()
                auth = challenge.genAuthHF(self.trunk.username or self.trunk.name, self.trunk.secret,
                                           "REGISTER", str(ruri), qop=qop)
                return SipHeader(name="authorization" if code == 401 else "proxy-authorization", body=auth)
        return None


class TrunkRegistrations:
    """Keeps a registration running for every enabled trunk that asks for one."""

    def __init__(self, global_config: dict[str, Any], store: Store) -> None:
        self.global_config = global_config
        self.store = store
        self.active: dict[str, TrunkRegistration] = {}

    def start(self) -> None:
        for trunk in self.store.trunks():
            if trunk.enabled and trunk.register:
                reg = TrunkRegistration(self.global_config, trunk)
                self.active[trunk.name] = reg
                reg.start()

    def stop(self) -> None:
        for reg in self.active.values():
            reg.stop()
        self.active.clear()

    def reload(self) -> None:
        self.stop()
        self.start()

    def status(self) -> list[dict[str, Any]]:
        try:
            trunks = [(t.name, t.enabled, t.register) for t in self.store.trunks()]
        except self.store.db_error:  # the database away (a restart): status still answers, from memory
            trunks = [(name, True, True) for name in sorted(self.active)]
        out = []
        for name, enabled, register in trunks:
            reg = self.active.get(name)
            state = reg.state.value if reg else ("disabled" if not enabled else "not registering")
            out.append({
                "name": name,
                "enabled": enabled,
                "register": register,
                "state": state,
                "detail": reg.detail if reg else "",
                "expires_in": round(reg.expires_at - time.time()) if reg and reg.expires_at else None,
            })
        return out
