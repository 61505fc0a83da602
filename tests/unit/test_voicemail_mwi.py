"""RFC 3842 message-summary bodies and the MwiNotifier's SUBSCRIBE/NOTIFY handling.

Requests are parsed by sippy from wire text; the notifier's NOTIFYs go to a transaction
manager twin that keeps them, and are checked after a round trip through sippy's parser.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sippy.SipRequest import SipRequest
from sippy.SipResponse import SipResponse

from appliance.sip.mwi import MwiNotifier, message_summary, parse_message_summary
from appliance.sip.registrar import Binding

PHONE = ("192.0.2.10", 5062)


class CapturingTm:
    """The transaction manager's sending side: keeps each request and its response callback."""

    def __init__(self) -> None:
        self.sent: list[tuple[Any, Callable[[Any], None]]] = []

    def newTransaction(self, msg: Any, resp_cb: Callable[[Any], None]) -> None:  # noqa: N802 - sippy's name
        self.sent.append((msg, resp_cb))

    def take(self) -> list[SipRequest]:
        """The requests sent so far, as the phone would parse them."""
        out = []
        for msg, _ in self.sent:
            req = SipRequest(buf=str(msg))
            req.target = msg.getTarget()
            out.append(req)
        self.sent.clear()
        return out


class Rig:
    def __init__(self) -> None:
        self.now = 1000.0
        self.tm = CapturingTm()
        self.deferred: list[Callable[[], None]] = []
        self.bindings: dict[str, list[Binding]] = {}
        self.counts = {"1001": (2, 1)}
        gc = {"_sip_address": "198.51.100.1", "_sip_port": 5060, "_sip_tm": self.tm}
        self.mwi = MwiNotifier(gc, lambda aor: self.bindings.get(aor, []), lambda m: self.counts.get(m, (0, 0)),
                               domain="pbx.example", clock=lambda: self.now, defer=self.deferred.append)

    def run_deferred(self) -> None:
        todo, self.deferred[:] = list(self.deferred), []
        for fn in todo:
            fn()


def subscribe(user: str = "1001", mailbox: str = "1001", event: str = "message-summary",
              expires: int | None = 600, to_tag: str | None = None, call_id: str = "sub-1",
              cseq: int = 1, source: tuple[str, int] = PHONE) -> SipRequest:
    lines = [
        f"SUBSCRIBE sip:{mailbox}@pbx.example SIP/2.0",
        f"Via: SIP/2.0/UDP {source[0]}:{source[1]};branch=z9hG4bK{call_id}{cseq};rport",
        "Max-Forwards: 70",
        f"From: <sip:{user}@pbx.example>;tag=phonetag",
        f"To: <sip:{mailbox}@pbx.example>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} SUBSCRIBE",
        f"Contact: <sip:{user}@{source[0]}:{source[1]};transport=udp>",
        f"Event: {event}",
        "Accept: application/simple-message-summary",
    ]
    if expires is not None:
        lines.append(f"Expires: {expires}")
    req = SipRequest(buf="\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n")
    req.source = (source, "udp")
    return req


def header(msg: Any, name: str) -> str:
    hfs = msg.getHFs(name)
    assert hfs, f"no {name} header in\n{msg}"
    return str(hfs[0].getBody())


def binding(contact: str, source: tuple[str, int]) -> Binding:
    return Binding("1001", contact, source, "udp", 5000.0, "phone", "reg-1", 1)


# -- bodies -------------------------------------------------------------------------------------
def test_message_summary_body() -> None:
    assert message_summary("1001", "pbx.example", 2, 1) == (
        "Messages-Waiting: yes\r\nMessage-Account: sip:1001@pbx.example\r\nVoice-Message: 2/1 (0/0)\r\n")
    assert message_summary("1001", "pbx.example", 0, 4).startswith("Messages-Waiting: no\r\n")
    assert parse_message_summary(message_summary("7", "d", 3, 5)) == (True, 3, 5)
    assert parse_message_summary("Messages-Waiting: no\r\n") == (False, 0, 0)
    with pytest.raises(ValueError):
        message_summary("1001", "d", -1, 0)
    with pytest.raises(ValueError):
        parse_message_summary("Voice-Message: 1/0\r\n")


# -- SUBSCRIBE ----------------------------------------------------------------------------------
def test_subscribe_is_answered_then_notified_with_the_current_counts() -> None:
    rig = Rig()
    resp = rig.mwi.handle_subscribe(subscribe(), "1001")
    assert resp.getSCode()[0] == 200
    local_tag = resp.getHFBody("to").getTag()
    assert local_tag and header(resp, "expires") == "600"
    assert "sip:1001@198.51.100.1:5060" in header(resp, "contact")
    assert rig.tm.sent == []  # the NOTIFY follows the 200, not before it
    rig.run_deferred()
    (notify,) = rig.tm.take()
    assert notify.getMethod() == "NOTIFY"
    assert str(notify.getRURI()) == "sip:1001@192.0.2.10:5062;transport=udp"  # the Contact
    assert notify.target == (PHONE, "udp")
    assert str(notify.getHFBody("call-id")) == "sub-1"
    assert notify.getHFBody("from").getTag() == local_tag
    assert notify.getHFBody("to").getTag() == "phonetag"
    assert header(notify, "event") == "message-summary"
    assert header(notify, "subscription-state") == "active;expires=600"
    assert str(notify.getBody().mtype) == "application/simple-message-summary"
    assert parse_message_summary(str(notify.getBody())) == (True, 2, 1)
    assert "Message-Account: sip:1001@pbx.example" in str(notify.getBody())


def test_bad_requests() -> None:
    rig = Rig()
    bad_event = rig.mwi.handle_subscribe(subscribe(event="presence"), "1001")
    assert bad_event.getSCode()[0] == 489 and header(bad_event, "allow-events") == "message-summary"
    assert rig.mwi.handle_subscribe(subscribe(mailbox="1002"), "1001").getSCode()[0] == 403
    brief = rig.mwi.handle_subscribe(subscribe(expires=10), "1001")
    assert brief.getSCode()[0] == 423 and header(brief, "min-expires") == "60"
    unknown = rig.mwi.handle_subscribe(subscribe(to_tag="nosuchtag", cseq=2), "1001")
    assert unknown.getSCode()[0] == 481
    rig.run_deferred()
    assert rig.tm.sent == [] and rig.mwi.active() == []


def test_refresh_keeps_the_dialog_and_unsubscribe_terminates() -> None:
    rig = Rig()
    tag = rig.mwi.handle_subscribe(subscribe(expires=None), "1001").getHFBody("to").getTag()
    assert rig.mwi.active()[0].expires_at == 1000.0 + 3600  # default
    rig.run_deferred()
    rig.tm.take()
    rig.now += 100
    refresh = rig.mwi.handle_subscribe(subscribe(to_tag=tag, cseq=2, expires=99999), "1001")
    assert refresh.getSCode()[0] == 200 and refresh.getHFBody("to").getTag() == tag
    assert header(refresh, "expires") == "3600"  # capped
    rig.run_deferred()
    (again,) = rig.tm.take()
    assert again.getHFBody("cseq").getCSeqNum() == 2  # our CSeq space in the dialog goes on
    assert len(rig.mwi.active("1001")) == 1
    bye = rig.mwi.handle_subscribe(subscribe(to_tag=tag, cseq=3, expires=0), "1001")
    assert bye.getSCode()[0] == 200 and rig.mwi.active() == []
    rig.run_deferred()
    (last,) = rig.tm.take()
    assert header(last, "subscription-state").startswith("terminated")


def test_expired_subscriptions_are_forgotten() -> None:
    rig = Rig()
    rig.mwi.handle_subscribe(subscribe(expires=60), "1001")
    rig.now += 61
    assert rig.mwi.active() == []
    rig.mwi.notify("1001", 1, 0)
    assert rig.tm.sent == []


# -- notify ------------------------------------------------------------------------------------
def test_notify_goes_in_dialog_to_subscribers_and_unsolicited_to_other_contacts() -> None:
    rig = Rig()
    rig.mwi.handle_subscribe(subscribe(), "1001")
    rig.run_deferred()
    rig.tm.take()
    rig.bindings["1001"] = [
        binding("sip:1001@192.0.2.10:5062", PHONE),  # the subscribed phone: not twice
        binding("sip:1001@192.0.2.20:5060", ("192.0.2.20", 5060)),  # a phone that does not subscribe
    ]
    rig.mwi.notify("1001", 1, 3)
    in_dialog, unsolicited = rig.tm.take()
    assert in_dialog.getHFBody("to").getTag() == "phonetag" and str(in_dialog.getHFBody("call-id")) == "sub-1"
    assert parse_message_summary(str(in_dialog.getBody())) == (True, 1, 3)
    assert unsolicited.target == (("192.0.2.20", 5060), "udp")
    assert str(unsolicited.getRURI()) == "sip:1001@192.0.2.20:5060"
    assert unsolicited.getHFBody("to").getTag() is None and unsolicited.getHFBody("from").getTag()
    assert str(unsolicited.getHFBody("call-id")) != "sub-1"
    assert header(unsolicited, "event") == "message-summary"
    assert header(unsolicited, "subscription-state") == "active"
    assert parse_message_summary(str(unsolicited.getBody())) == (True, 1, 3)
    rig.mwi.notify("1001", 1, 3)  # unchanged: nothing
    assert rig.tm.sent == []
    rig.mwi.notify("1001", 1, 3, force=True)
    assert len(rig.tm.take()) == 2
    rig.mwi.notify("1001", 0, 4)
    assert [parse_message_summary(str(r.getBody())) for r in rig.tm.take()] == [(False, 0, 4)] * 2
    assert rig.mwi.sent == 7  # with the first NOTIFY after the SUBSCRIBE


def test_a_481_to_our_notify_ends_the_subscription() -> None:
    rig = Rig()
    rig.mwi.handle_subscribe(subscribe(), "1001")
    rig.run_deferred()
    (msg, resp_cb), = rig.tm.sent
    resp_cb(SipResponse(buf=str(msg.genResponse(481, "Subscription Does Not Exist"))))
    assert rig.mwi.active() == [] and rig.mwi.failed == 1
