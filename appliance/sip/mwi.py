"""Message-waiting indication: RFC 3842 message-summary over SUBSCRIBE/NOTIFY (RFC 6665).

Phones learn their voicemail counts two ways, and real deployments need both:

* a phone that SUBSCRIBEs to ``message-summary`` gets a dialog: 200 OK, an immediate NOTIFY
  with the current counts (RFC 6665 §4.2.1.2), and a NOTIFY in that dialog at every change;
* a phone that does not subscribe (many are configured for "unsolicited MWI") gets an
  out-of-dialog NOTIFY at every registered contact when the counts change.

Subscriptions live in memory only: after a restart the phones' refreshes get 481 and they
subscribe again (RFC 6665 §4.1.2.4). Expired subscriptions are dropped lazily, without a
final NOTIFY; a phone that let its subscription lapse does not expect one.
"""
from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sippy.MsgBody import MsgBody
from sippy.SipAddress import SipAddress
from sippy.SipCallId import SipCallId
from sippy.SipContact import SipContact
from sippy.SipFrom import SipFrom
from sippy.SipRequest import SipRequest
from sippy.SipResponse import SipResponse
from sippy.SipTo import SipTo
from sippy.SipURL import SipURL
from sippy.Time.Timeout import Timeout

from appliance.sip import path as sip_path
from appliance.sip.registrar import Binding
from appliance.sip.headers import raw_header

log = logging.getLogger("plateau.sip.mwi")

EVENT_PACKAGE = "message-summary"
CONTENT_TYPE = "application/simple-message-summary"
MIN_EXPIRES = 60
MAX_EXPIRES = 3600
DEFAULT_EXPIRES = 3600  # RFC 3842 §4 leaves the default to the notifier; one hour is usual
_PARSE_ERRORS = (ValueError, IndexError, TypeError, AttributeError, KeyError)
_SUMMARY_RE = re.compile(r"(?im)^voice-message\s*:\s*(\d+)\s*/\s*(\d+)")
_WAITING_RE = re.compile(r"(?im)^messages-waiting\s*:\s*(yes|no)\s*$")


def message_summary(mailbox: str, domain: str, new: int, old: int) -> str:
    """The application/simple-message-summary body (RFC 3842 §5.2).

    ``Voice-Message: new/old (urgent-new/urgent-old)``: we have no urgent messages.
    """
    if new < 0 or old < 0:
        raise ValueError(f"message counts must be >= 0 (got {new}/{old})")
    return (f"Messages-Waiting: {'yes' if new else 'no'}\r\n"
            f"Message-Account: sip:{mailbox}@{domain}\r\n"
            f"Voice-Message: {new}/{old} (0/0)\r\n")


def parse_message_summary(body: str) -> tuple[bool, int, int]:
    """(waiting, new, old) from a message-summary body; ValueError if it has no status line."""
    waiting = _WAITING_RE.search(body)
    if waiting is None:
        raise ValueError("message-summary without Messages-Waiting (RFC 3842 §5.2)")
    voice = _SUMMARY_RE.search(body)
    new, old = (int(voice.group(1)), int(voice.group(2))) if voice else (0, 0)
    return waiting.group(1).lower() == "yes", new, old


@dataclass
class Subscription:
    """One phone's message-summary subscription: the dialog we NOTIFY in."""

    mailbox: str
    call_id: str
    local_tag: str  # our To tag in the 200 (we are the notifier)
    remote_tag: str  # the subscriber's From tag
    remote_url: SipURL  # the subscriber's From URI: the To of our NOTIFYs
    contact: SipURL  # the subscriber's Contact: the Request-URI of our NOTIFYs (RFC 6665 §4.1.3)
    target: tuple[tuple[str, int], str]  # where the SUBSCRIBE came from (NAT-safe), transport
    expires_at: float
    cseq: int = field(default=0)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)


def _header_value(req: Any, *names: str) -> str | None:
    for name in names:
        hfs = req.getHFs(name)
        if hfs:
            body = hfs[0].body  # unparsed bodies keep the text as received (sippy parses lazily)
            return str(body) if getattr(body, "parsed", False) else str(body.body)
    return None


class MwiNotifier:
    """Sends message-summary NOTIFYs; also the UAS side of SUBSCRIBE (see `handle_subscribe`).

    ``contacts`` is the Registrar (its ``contacts(aor)``) or any callable returning Bindings;
    ``counts(mailbox) -> (new, old)`` answers a new subscription (e.g. ``Mailboxes.counts``).
    """

    def __init__(self, global_config: dict[str, Any], contacts: Any,
                 counts: Callable[[str], tuple[int, int]], domain: str | None = None,
                 clock: Callable[[], float] = time.time,
                 defer: Callable[[Callable[[], None]], None] | None = None) -> None:
        self.global_config = global_config
        self._contacts: Callable[[str], list[Binding]] = (
            contacts.contacts if hasattr(contacts, "contacts") else contacts)
        self.counts = counts
        self._domain = domain
        self.clock = clock
        # The first NOTIFY goes out after the 200 that the transaction manager sends when the
        # request callback returns; sippy's Timeout runs it on the SIP loop just after.
        self.defer = defer or (lambda fn: Timeout(fn, 0.001))
        self.subscriptions: dict[tuple[str, str, str], Subscription] = {}
        self.last_sent: dict[str, tuple[int, int]] = {}
        self.sent = 0
        self.failed = 0

    @property
    def domain(self) -> str:
        return self._domain or str(self.global_config["_sip_address"])

    # -- what the PBX calls ----------------------------------------------------------------
    def notify(self, mailbox: str, new: int, old: int, force: bool = False) -> None:
        """The counts of `mailbox` are now (new, old): tell its subscribers and registered phones.

        Nothing is sent when the counts are those last sent, unless `force`.
        """
        if not force and self.last_sent.get(mailbox) == (new, old):
            return
        self.last_sent[mailbox] = (new, old)
        body = message_summary(mailbox, self.domain, new, old)
        subs = self.active(mailbox)
        for sub in subs:
            self._notify_in_dialog(sub, body, "active")
        covered = {sub.target for sub in subs}
        for binding in self._contacts(mailbox):
            if binding.target not in covered:
                self._notify_unsolicited(binding, body)

    def active(self, mailbox: str | None = None) -> list[Subscription]:
        """Unexpired subscriptions (of one mailbox, or all)."""
        now = self.clock()
        for key in [k for k, s in self.subscriptions.items() if s.expires_at <= now]:
            del self.subscriptions[key]
        return [s for s in self.subscriptions.values() if mailbox is None or s.mailbox == mailbox]

    # -- SUBSCRIBE (the router calls this once the phone is authenticated) -------------------
    def handle_subscribe(self, req: Any, user: str) -> SipResponse:
        """Answer a SUBSCRIBE from authenticated extension `user`; a 2xx is followed by a NOTIFY."""
        event = (_header_value(req, "event", "o") or "").split(";")[0].strip().lower()
        if event != EVENT_PACKAGE:
            # RFC 6665 §8.3.2 / RFC 3265 §3.1.4.2: 489 and the packages we do support.
            resp = req.genResponse(489, "Bad Event")
            resp.appendHeader(raw_header("Allow-Events", EVENT_PACKAGE))
            return resp
        try:
            mailbox = req.getRURI().username or user
            expires = self._expires(req)
            call_id = str(req.getHFBody("call-id"))
            frm = req.getHFBody("from")
            remote_tag = frm.getTag() or ""
            remote_url = frm.getUrl().getCopy()
            contacts = req.getHFBodys("contact")
            contact = contacts[0].getUrl().getCopy() if contacts else remote_url.getCopy()
            local_tag = req.getHFBody("to").getTag()
        except _PARSE_ERRORS:
            return req.genResponse(400, "Bad Request")
        if expires is None:
            return req.genResponse(400, "Bad Request - Invalid Expires")
        if mailbox != user:
            # Counts are private: a phone may watch its own mailbox only.
            return req.genResponse(403, "Forbidden - Not Your Mailbox")
        if 0 < expires < MIN_EXPIRES:
            resp = req.genResponse(423, "Interval Too Brief")
            resp.appendHeader(raw_header("Min-Expires", str(MIN_EXPIRES)))
            return resp
        expires = min(expires, MAX_EXPIRES)
        if local_tag is not None:
            sub = self.subscriptions.get((call_id, local_tag, remote_tag))
            if sub is None or sub.expires_at <= self.clock():
                # A refresh of a subscription we do not know (restart): RFC 6665 §4.1.2.4.
                return req.genResponse(481, "Subscription Does Not Exist")
        else:
            local_tag = secrets.token_hex(8)
            (host, port), transport = req.getSource(ver=2)
            sub = Subscription(mailbox, call_id, local_tag, remote_tag, remote_url, contact,
                               ((str(host), int(port)), str(transport).lower()), 0.0)
        sub.expires_at = self.clock() + expires
        sub.contact = contact
        if expires == 0:
            self.subscriptions.pop(sub.key, None)
        else:
            self.subscriptions[sub.key] = sub
        resp = req.genResponse(200, "OK")
        resp.getHFBody("to").setTag(local_tag)
        resp.appendHeader(raw_header("Expires", str(expires)))
        resp.appendHeader(raw_header("Contact", f"<sip:{mailbox}@{self._local_hostport()}>"))
        self.defer(lambda: self._first_notify(sub, expires))
        return resp

    def _expires(self, req: Any) -> int | None:
        value = _header_value(req, "expires")
        if value is None:
            return DEFAULT_EXPIRES
        value = value.strip()
        return int(value) if value.isdigit() else None

    def _first_notify(self, sub: Subscription, expires: int) -> None:
        """RFC 6665 §4.2.1.2: a NOTIFY at once, with the state; terminated on an unsubscribe."""
        try:
            new, old = self.counts(sub.mailbox)
        except (ValueError, OSError) as exc:
            log.error("MWI counts of %s unavailable: %s", sub.mailbox, exc)
            new, old = 0, 0
        body = message_summary(sub.mailbox, self.domain, new, old)
        self._notify_in_dialog(sub, body, "terminated;reason=timeout" if expires == 0 else "active")

    # -- sending -------------------------------------------------------------------------------
    def _local_hostport(self) -> str:
        return f"{self.global_config['_sip_address']}:{self.global_config['_sip_port']}"

    def _our_address(self, mailbox: str) -> SipAddress:
        return SipAddress(url=SipURL(username=mailbox, host=self.domain))

    def _notify_in_dialog(self, sub: Subscription, body: str, state: str) -> None:
        sub.cseq += 1
        if state == "active":
            state = f"active;expires={max(0, int(sub.expires_at - self.clock()))}"
        fr0m = SipFrom(address=self._our_address(sub.mailbox))
        fr0m.setTag(sub.local_tag)
        to = SipTo(address=SipAddress(url=sub.remote_url.getCopy()))
        to.setTag(sub.remote_tag)
        req = SipRequest(method="NOTIFY", ruri=sub.contact.getCopy(), fr0m=fr0m, to=to,
                         callid=SipCallId(sub.call_id), cseq=sub.cseq, target=sub.target,
                         contact=SipContact(address=SipAddress(url=SipURL(
                             username=sub.mailbox, host=str(self.global_config["_sip_address"]),
                             port=int(self.global_config["_sip_port"])))))
        self._send(req, body, state, lambda code: self._dialog_response(sub, code))

    def _notify_unsolicited(self, binding: Binding, body: str) -> None:
        fr0m = SipFrom(address=self._our_address(binding.aor))
        fr0m.setTag(secrets.token_hex(8))
        # A binding with a Path (RFC 3327 §5.3) is reached through it: the path is the Route set.
        routes = sip_path.sip_routes(binding.path) if binding.path else ()
        req = SipRequest(method="NOTIFY", ruri=SipURL(binding.contact_uri), fr0m=fr0m,
                         to=SipTo(address=self._our_address(binding.aor)), callid=SipCallId(),
                         cseq=1, target=binding.target, routes=routes)
        self._send(req, body, "active", lambda code: None)

    def _send(self, req: SipRequest, body: str, state: str, on_code: Callable[[int], None]) -> None:
        req.appendHeader(raw_header("Event", EVENT_PACKAGE))
        req.appendHeader(raw_header("Subscription-State", state))
        req.setBody(MsgBody(body, mtype=CONTENT_TYPE))
        tm = self.global_config.get("_sip_tm")
        if tm is None:
            log.error("MWI: no SIP transaction manager yet; NOTIFY to %s dropped", req.getRURI())
            return
        target = req.getTarget()

        def response(resp: SipResponse) -> None:
            code, reason = resp.getSCode()
            if code < 200:
                return
            if code >= 300:
                self.failed += 1
                log.info("MWI NOTIFY to %s:%s answered %d %s", target[0][0], target[0][1], code, reason)
            on_code(code)

        try:
            tm.newTransaction(req, response)
        except (OSError, ValueError, RuntimeError) as exc:
            self.failed += 1
            log.warning("MWI NOTIFY to %s not sent: %s", target, exc)
            return
        self.sent += 1

    def _dialog_response(self, sub: Subscription, code: int) -> None:
        # RFC 6665 §4.2.2: 481 (and any other failure but 408/5xx retriable ones) ends the
        # subscription; the phone will subscribe again.
        if code == 481 or 400 <= code < 500 and code != 408:
            self.subscriptions.pop(sub.key, None)
