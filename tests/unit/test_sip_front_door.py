"""Behind the front door: the sender's own address (X-Plateau-Source, trusted from configured
front doors only) and the REGISTER's Path (RFC 3327), on real sippy requests."""
from __future__ import annotations

import pytest
from sippy.Network_server import Remote_address
from sippy.SipRequest import SipRequest

from appliance.sip import path as sip_path
from appliance.sip.digest import DigestAuthenticator, compute_response, parse_digest
from appliance.sip.front_door import FrontDoors, RequestSource, parse_addresses, parse_header
from appliance.sip.guard import ScannerGuard
from appliance.sip.registrar import Binding, Registrar

REALM = "pbx.example"
DOOR = "192.0.2.1"  # the front door (Kamailio)
PHONE = "203.0.113.5"
PATH = f"<sip:{DOOR}:5060;lr;received=sip:{PHONE}:40000>"


def request(extra: tuple[str, ...] = (), source: tuple[str, int] = (DOOR, 5060), method: str = "OPTIONS") -> SipRequest:
    lines = [f"{method} sip:{REALM} SIP/2.0", "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1",
             f"From: <sip:1001@{REALM}>;tag=ft", f"To: <sip:1001@{REALM}>", "Call-ID: cid-1",
             f"CSeq: 1 {method}", "Max-Forwards: 70", *extra]
    req = SipRequest("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n")
    req.setSource(Remote_address(source, "udp"))
    return req


def test_the_header_names_the_source_only_from_a_trusted_front_door() -> None:
    doors = FrontDoors([DOOR])
    relayed = request((f"X-Plateau-Source: {PHONE}:40000;transport=tcp",))
    assert doors.source(relayed) == RequestSource(PHONE, 40000, "tcp", relayed=True)
    forged = request((f"X-Plateau-Source: {PHONE}:40000",), source=("198.51.100.7", 5060))
    assert doors.source(forged) == RequestSource("198.51.100.7", 5060, "udp")
    assert FrontDoors().source(relayed) == RequestSource(DOOR, 5060, "udp")  # no front door configured
    assert doors.source(request()) == RequestSource(DOOR, 5060, "udp")  # Kamailio's own keepalive


@pytest.mark.parametrize("value", ["", "203.0.113.5", "203.0.113.5:0", "203.0.113.5:70000", "evil.example:5060",
                                   "203.0.113.5:5060;transport=carrier-pigeon", ":5060", "1.2.3.4:5x"])
def test_a_malformed_source_header_is_ignored(value: str) -> None:
    assert parse_header(value) is None
    assert FrontDoors([DOOR]).source(request((f"X-Plateau-Source: {value}",))).host == DOOR


def test_front_door_addresses_are_checked() -> None:
    assert parse_addresses("127.0.0.2, ::1") == ("127.0.0.2", "::1")
    with pytest.raises(ValueError, match="'kamailio' is not an IP address"):
        parse_addresses("127.0.0.2,kamailio")


def test_a_path_is_split_into_its_route_set_and_its_first_hop() -> None:
    path = sip_path.join([PATH, "<sip:edge.example;lr>, <sip:[2001:db8::1]:5070;lr>"])
    assert sip_path.route_set(path) == [PATH, "<sip:edge.example;lr>", "<sip:[2001:db8::1]:5070;lr>"]
    assert sip_path.first_hop(path) == ((DOOR, 5060), "udp")
    assert sip_path.first_hop("") is None
    with pytest.raises(ValueError, match="not a SIP URI"):
        sip_path.sip_routes("<mailto:someone@example.com>")


class Site:
    """A registrar behind the front door, with the real digest and guard."""

    def __init__(self) -> None:
        self.auth = DigestAuthenticator(REALM, b"k" * 32)
        self.guard = ScannerGuard(max_failures=2, allowlist=[DOOR])
        self.stored: list[Binding] = []
        self.reg = Registrar(self.auth, {"1001": "pw"}.get, self.guard, self.stored.append, lambda a, u: None,
                             front_doors=FrontDoors([DOOR]))
        self.nonce = parse_digest(self.auth.challenge()[0][1])["nonce"]
        self.nc = 0

    def register(self, password: str = "pw", extra: tuple[str, ...] = (f"Path: {PATH}",)) -> int:
        self.nc += 1
        nc = f"{self.nc:08x}"
        resp = compute_response("SHA-256", "1001", REALM, password, "REGISTER", f"sip:{REALM}", self.nonce, nc,
                                "cn", "auth")
        auth = (f'Authorization: Digest username="1001", realm="{REALM}", nonce="{self.nonce}", uri="sip:{REALM}", '
                f'response="{resp}", algorithm=SHA-256, qop=auth, nc={nc}, cnonce="cn"')
        req = request((f"X-Plateau-Source: {PHONE}:40000;transport=udp", "Contact: <sip:1001@10.0.0.9:5062>",
                       auth, *extra), method="REGISTER")
        self.last = self.reg.handle_register(req)
        return int(self.last.getSCode()[0])


def test_a_register_through_the_front_door_stores_its_path_and_the_phone_s_address() -> None:
    site = Site()
    assert site.register() == 200
    [b] = site.stored
    assert (b.path, b.source) == (PATH, (PHONE, 40000))
    assert b.target == ((DOOR, 5060), "udp")  # requests to the phone go to the front door
    assert not site.last.getHFs("path")  # the phone did not say Supported: path


def test_the_path_is_echoed_to_a_phone_that_supports_it() -> None:
    site = Site()
    assert site.register(extra=(f"Path: {PATH}", "Supported: replaces, path")) == 200
    assert [str(h.body) for h in site.last.getHFs("path")] == [PATH]  # RFC 3327 §5.3


def test_a_path_that_is_not_a_sip_uri_is_refused_with_400() -> None:
    site = Site()
    assert site.register(extra=("Path: <mailto:x@example.com>",)) == 400
    assert site.stored == []


def test_wrong_passwords_through_the_front_door_block_the_phone_not_the_front_door() -> None:
    site = Site()
    site.register(password="guess")
    site.register(password="guess")
    assert site.guard.is_blocked(PHONE) and not site.guard.is_blocked(DOOR)
    assert site.register() == 403  # the blocked phone, even with the right password, through the door
