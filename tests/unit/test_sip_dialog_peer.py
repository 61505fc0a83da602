"""The in-dialog source check: who counts as a dialog's peer (NAT, TCP, DNS-named trunks)."""
from __future__ import annotations

import logging

import pytest

from appliance.sip.dialog_peer import DialogPeer, InDialogGuard


def test_udp_peer_is_the_exact_source_address_and_port() -> None:
    peer = DialogPeer.parse("203.0.113.7:40123", "udp")  # a phone behind NAT: the NAT's public side
    assert peer.sent("203.0.113.7", 40123, "udp")
    assert not peer.sent("203.0.113.7", 40124, "udp")  # same host, another port: a stranger
    assert not peer.sent("198.51.100.1", 40123, "udp")
    assert not peer.sent("203.0.113.7", 40123, "tcp")  # same address over another transport


def test_tcp_peer_may_open_a_new_connection_from_another_port() -> None:
    peer = DialogPeer.parse("192.0.2.5:51000", "TCP")
    assert peer.sent("192.0.2.5", 51999, "tcp")  # RFC 3261 18.1.1: a new connection, ephemeral port
    assert not peer.sent("192.0.2.6", 51000, "tcp")


def test_ipv6_and_trunk_by_name() -> None:
    assert DialogPeer.parse("[::1]:5060").sent("[::1]", 5060, "udp")
    trunk = DialogPeer.at("localhost", 5070, "udp")  # a trunk named by DNS: its addresses count
    assert trunk.sent("127.0.0.1", 5070, "udp")
    assert not trunk.sent("127.0.0.1", 5071, "udp")


def test_refusals_are_counted_and_logged_once_a_minute_per_source(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    guard = InDialogGuard(clock=lambda: now[0])
    peer = DialogPeer.parse("192.0.2.5:5060")
    with caplog.at_level(logging.WARNING, logger="plateau.sip"):
        for _ in range(50):
            guard.refused("REFER", "198.51.100.9:5060/udp", peer, "abc@x")
        now[0] = 61.0
        guard.refused("BYE", "198.51.100.9:5060/udp", peer, "abc@x")
    assert guard.status() == {"foreign_source": 51}
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) == 2
