"""Early overload shedding (appliance.sip.overload): which INVITEs are refused, when, and how."""

import re

import pytest

from appliance.sip.malformed import EdgeCounters
from appliance.sip.overload import OverloadGate, is_new_unauthenticated_invite

INVITE = (b"INVITE sip:1002@pbx SIP/2.0\r\n"
          b"Via: SIP/2.0/UDP 10.1.1.1:5062;rport;branch=z9hG4bK1\r\n"
          b"From: <sip:1001@pbx>;tag=aa\r\n"
          b"To: <sip:1002@pbx>\r\n"
          b"Call-ID: cid-1\r\n"
          b"CSeq: 1 INVITE\r\n"
          b"Content-Length: 0\r\n\r\n")


def test_only_new_invites_without_credentials_are_candidates():
    assert is_new_unauthenticated_invite(INVITE)
    assert not is_new_unauthenticated_invite(INVITE.replace(b"To: <sip:1002@pbx>", b"t: <sip:1002@pbx> ; tag=x"))
    assert not is_new_unauthenticated_invite(INVITE.replace(b"Content-Length", b"Proxy-Authorization: Digest x\r\n"
                                                            b"Content-Length"))
    for method in (b"ACK", b"BYE", b"CANCEL", b"OPTIONS"):
        assert not is_new_unauthenticated_invite(INVITE.replace(b"INVITE sip", method + b" sip", 1))
    assert not is_new_unauthenticated_invite(b"SIP/2.0 200 OK\r\n" + INVITE.split(b"\r\n", 1)[1])


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def gate_with_delay(delay: float, rng: float = 0.5) -> tuple[OverloadGate, Clock, EdgeCounters]:
    clock, counters = Clock(), EdgeCounters()
    gate = OverloadGate(counters, low=0.1, high=0.4, clock=clock, rng=lambda: rng)
    for _ in range(200):  # the loop reports the same lateness for a while
        gate.posted()
        gate.handled(clock.now - delay)
    return gate, clock, counters


@pytest.mark.parametrize(("delay", "share"), [(0.0, 0.0), (0.1, 0.0), (0.25, 0.5), (0.4, 1.0), (2.0, 1.0)])
def test_share_shed_grows_with_the_loop_delay(delay, share):
    gate, _, _ = gate_with_delay(delay)
    assert gate.shed_fraction() == pytest.approx(share, abs=0.02)


def test_refused_invite_gets_503_with_retry_after_and_is_counted():
    gate, _, counters = gate_with_delay(1.0)
    sent = []
    assert gate.refuse(INVITE, ("192.0.2.9", 4000), lambda d, a: sent.append((d, a)))
    reply, addr = sent[0]
    assert addr == ("192.0.2.9", 4000)
    assert reply.startswith(b"SIP/2.0 503 Service Unavailable (overloaded)\r\n")
    assert re.search(rb"\r\nRetry-After: [2-5]\r\n", reply)
    assert b"CSeq: 1 INVITE" in reply and b"Call-ID: cid-1" in reply
    assert counters["invites_shed_early"] == 1
    # In-dialog requests, and the challenged call's second INVITE, always pass.
    in_dialog = INVITE.replace(b"To: <sip:1002@pbx>", b"To: <sip:1002@pbx>;tag=b")
    authed = INVITE.replace(b"Content-Length", b"Proxy-Authorization: Digest x\r\nContent-Length")
    bye = INVITE.replace(b"INVITE sip", b"BYE sip", 1)
    assert not any(gate.refuse(m, ("192.0.2.9", 4000), lambda d, a: sent.append(d)) for m in (in_dialog, authed, bye))
    assert len(sent) == 1


def test_no_shedding_when_the_loop_keeps_up_or_the_delay_is_old():
    gate, clock, _ = gate_with_delay(0.05)
    assert not gate.refuse(INVITE, ("192.0.2.9", 4000), lambda d, a: None)
    gate, clock, _ = gate_with_delay(1.0)
    clock.now += 2.0  # nothing handled for 2 s: that delay says nothing about now
    assert gate.shed_fraction() == 0.0


def test_a_stuck_loop_with_a_long_queue_sheds_everything():
    clock = Clock()
    gate = OverloadGate(EdgeCounters(), max_pending=10, clock=clock)
    for _ in range(11):
        gate.posted()
    assert gate.shed_fraction() == 1.0 and gate.status()["pending"] == 11


def test_ack_and_bye_after_an_early_503_are_settled_in_the_transport():
    gate, _, counters = gate_with_delay(1.0)
    sent: list[bytes] = []
    assert gate.refuse(INVITE, ("192.0.2.9", 4000), lambda d, a: sent.append(d))
    tag = re.search(rb"\r\nTo: <sip:1002@pbx>;tag=(\w+)\r\n", sent[0]).group(1)
    assert tag.startswith(b"pshed")
    to = b"To: <sip:1002@pbx>;tag=" + tag
    ack = INVITE.replace(b"INVITE sip", b"ACK sip", 1).replace(b"To: <sip:1002@pbx>", to)
    bye = INVITE.replace(b"INVITE sip", b"BYE sip", 1).replace(b"To: <sip:1002@pbx>", to)
    assert gate.refuse(ack, ("192.0.2.9", 4000), lambda d, a: sent.append(d))  # absorbed (§17.1.1.3)
    assert len(sent) == 1
    assert gate.refuse(bye, ("192.0.2.9", 4000), lambda d, a: sent.append(d))
    assert sent[1].startswith(b"SIP/2.0 481 ")
    assert counters["shed_followups"] == 2
    other = bye.replace(tag, b"0123abcd")  # a real dialog's BYE always reaches the loop
    assert not gate.refuse(other, ("192.0.2.9", 4000), lambda d, a: sent.append(d))
