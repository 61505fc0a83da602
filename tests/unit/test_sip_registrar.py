"""Registrar: RFC 3261 §10.3 processing on real sippy requests."""

import pytest
from sippy.Network_server import Remote_address
from sippy.SipRequest import SipRequest

from appliance.sip.digest import DigestAuthenticator, compute_response, parse_digest
from appliance.sip.guard import ScannerGuard
from appliance.sip.registrar import Binding, Registrar

REALM = "pbx.example"
SECRETS = {"1001": "pw1001", "1002": "pw1002"}


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


class Env:
    def __init__(self, **kw) -> None:
        self.clock = Clock()
        self.auth = DigestAuthenticator(REALM, b"k" * 32, clock=self.clock)
        self.guard = ScannerGuard(max_failures=3, clock=self.clock)
        self.persisted: list[Binding] = []
        self.forgotten: list[tuple[str, str]] = []
        self.reg = Registrar(self.auth, SECRETS.get, self.guard, self.persisted.append,
                             lambda aor, uri: self.forgotten.append((aor, uri)),
                             clock=self.clock, **kw)
        self.nonce = parse_digest(self.auth.challenge()[0][1])["nonce"]
        self.nc = 0

    def request(self, user="1001", contacts=("<sip:1001@192.168.1.20:5062>",), expires=None,
                call_id="cid-1", cseq=1, auth_user=None, password=None, alg="SHA-256",
                source=("203.0.113.5", 40000), transport="udp", with_auth=True, nonce=None):
        lines = [f"REGISTER sip:{REALM} SIP/2.0",
                 f"Via: SIP/2.0/UDP 192.168.1.20:5062;rport;branch=z9hG4bK{cseq}",
                 f"From: <sip:{user}@{REALM}>;tag=ft", f"To: <sip:{user}@{REALM}>",
                 f"Call-ID: {call_id}", f"CSeq: {cseq} REGISTER", "User-Agent: TestPhone/1.0",
                 "Max-Forwards: 70"]
        lines += [f"Contact: {c}" for c in contacts]
        if expires is not None:
            lines.append(f"Expires: {expires}")
        if with_auth:
            self.nc += 1
            u = auth_user or user
            pw = password if password is not None else SECRETS.get(u, "nope")
            nc = f"{self.nc:08x}"
            n = nonce or self.nonce
            resp = compute_response(alg, u, REALM, pw, "REGISTER", f"sip:{REALM}", n, nc,
                                    "cn0nce", "auth")
            lines.append(f'Authorization: Digest username="{u}", realm="{REALM}", nonce="{n}", '
                         f'uri="sip:{REALM}", response="{resp}", algorithm={alg}, qop=auth, '
                         f'nc={nc}, cnonce="cn0nce"')
        req = SipRequest("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n")
        req.setSource(Remote_address(source, transport))
        return self.reg.handle_register(req)


def code(resp):
    return resp.getSCode()[0]


def hdrs(resp, name):
    return [str(h.body) for h in resp.getHFs(name)]


def test_no_credentials_gets_two_challenges_not_counted():
    env = Env()
    r = env.request(with_auth=False)
    assert code(r) == 401
    ch = hdrs(r, "www-authenticate")
    assert len(ch) == 2 and "algorithm=SHA-256" in ch[0] and "algorithm=MD5" in ch[1]
    assert "WWW-Authenticate: Digest" in r.localStr()
    for _ in range(5):
        env.request(with_auth=False)
    assert not env.guard.is_blocked("203.0.113.5")


def test_register_ok_lists_contact_and_records_nat_source():
    env = Env()
    r = env.request(expires=120)
    assert code(r) == 200
    assert hdrs(r, "contact") == ["<sip:1001@192.168.1.20:5062>;expires=120"]
    assert hdrs(r, "date")
    [b] = env.reg.contacts("1001")
    assert b.source == ("203.0.113.5", 40000) and b.transport == "udp"
    assert b.target == (("203.0.113.5", 40000), "udp")
    assert b.contact_uri == "sip:1001@192.168.1.20:5062" and b.user_agent == "TestPhone/1.0"
    assert (b.call_id, b.cseq, b.expires_at) == ("cid-1", 1, env.clock.t + 120)
    assert env.persisted == [b]


def test_md5_also_accepted_and_tcp_source_kept():
    env = Env()
    assert code(env.request(alg="MD5", transport="tcp")) == 200
    assert env.reg.contacts("1001")[0].transport == "tcp"


def test_wrong_password_401_counted_then_blocked():
    env = Env()
    for _ in range(3):
        r = env.request(password="bad")
        assert code(r) == 401 and hdrs(r, "www-authenticate")
    assert env.guard.is_blocked("203.0.113.5")
    assert code(env.request()) == 403  # only reached without a guarding transaction manager


def test_unknown_extension_looks_like_wrong_password():
    env = Env()
    r = env.request(user="7777")
    assert code(r) == 401  # not 404: no extension enumeration
    assert code(env.request(user="7777", with_auth=False)) == 401


def test_success_resets_failures():
    env = Env()
    env.request(password="bad")
    env.request(password="bad")
    assert code(env.request()) == 200
    env.request(password="bad")
    env.request(password="bad")
    assert not env.guard.is_blocked("203.0.113.5")


def test_register_for_other_extension_403():
    env = Env()
    r = env.request(user="1002", auth_user="1001")
    assert code(r) == 403
    assert env.reg.contacts("1002") == []


def test_stale_nonce_401_stale_not_counted():
    env = Env()
    env.clock.t += 301
    for _ in range(4):
        r = env.request()
        assert code(r) == 401 and "stale=true" in hdrs(r, "www-authenticate")[0]
    assert not env.guard.is_blocked("203.0.113.5")


def test_interval_too_brief_423_with_min_expires():
    env = Env(min_expires=60)
    r = env.request(expires=30)
    assert code(r) == 423 and hdrs(r, "min-expires") == ["60"]


def test_expires_clamped_and_contact_param_wins():
    env = Env(max_expires=3600)
    r = env.request(contacts=("<sip:1001@10.0.0.1>;expires=100000", "<sip:1001@10.0.0.2>"),
                    expires=300)
    assert code(r) == 200
    got = sorted(hdrs(r, "contact"))
    assert got == ["<sip:1001@10.0.0.1>;expires=3600", "<sip:1001@10.0.0.2>;expires=300"]


@pytest.mark.parametrize("kw", [
    {"expires": "soon"},
    {"contacts": ("<sip:1001@10.0.0.1>;expires=abc",)},
    {"contacts": ("*",), "expires": 60},
    {"contacts": ("*", "<sip:1001@10.0.0.1>"), "expires": 0},
])
def test_bad_contact_or_expires_400(kw):
    env = Env()
    assert code(env.request(**kw)) == 400


def test_individual_expiry_and_expire_calls_forget():
    env = Env()
    env.request(contacts=("<sip:1001@10.0.0.1>;expires=100", "<sip:1001@10.0.0.2>;expires=400"))
    env.clock.t += 150
    assert [b.contact_uri for b in env.reg.contacts("1001")] == ["sip:1001@10.0.0.2"]
    gone = env.reg.expire()
    assert [b.contact_uri for b in gone] == ["sip:1001@10.0.0.1"]
    assert env.forgotten == [("1001", "sip:1001@10.0.0.1")]
    assert len(env.reg.all_bindings()) == 1


def test_expires_zero_removes_one_and_wildcard_removes_all():
    env = Env()
    env.request(contacts=("<sip:1001@10.0.0.1>", "<sip:1001@10.0.0.2>"), cseq=1)
    r = env.request(contacts=("<sip:1001@10.0.0.1>;expires=0",), cseq=2)
    assert hdrs(r, "contact") == ["<sip:1001@10.0.0.2>;expires=600"]
    r = env.request(contacts=("*",), expires=0, cseq=3)
    assert code(r) == 200 and hdrs(r, "contact") == []
    assert env.reg.contacts("1001") == []
    assert sorted(env.forgotten) == [("1001", "sip:1001@10.0.0.1"), ("1001", "sip:1001@10.0.0.2")]


def test_query_without_contact_lists_bindings():
    env = Env()
    env.request(cseq=1)
    r = env.request(contacts=(), cseq=2)
    assert code(r) == 200 and len(hdrs(r, "contact")) == 1


def test_cseq_ordering_same_call_id():
    env = Env()
    assert code(env.request(cseq=5)) == 200
    assert code(env.request(cseq=5)) == 400
    assert code(env.request(cseq=4, contacts=("*",), expires=0)) == 400
    assert env.reg.contacts("1001")  # nothing changed
    assert code(env.request(cseq=6)) == 200
    # A new Call-ID (phone rebooted) may start at any CSeq.
    assert code(env.request(cseq=1, call_id="cid-2")) == 200


def test_max_contacts_evicts_soonest_expiring():
    env = Env(max_contacts=2)
    env.request(contacts=("<sip:1001@10.0.0.1>;expires=100",), cseq=1)
    env.request(contacts=("<sip:1001@10.0.0.2>;expires=200",), cseq=2)
    r = env.request(contacts=("<sip:1001@10.0.0.3>;expires=300",), cseq=3)
    assert sorted(hdrs(r, "contact")) == ["<sip:1001@10.0.0.2>;expires=200",
                                          "<sip:1001@10.0.0.3>;expires=300"]
    assert ("1001", "sip:1001@10.0.0.1") in env.forgotten


def test_restore_and_drop_source():
    env = Env()
    now = env.clock.t
    env.reg.restore([
        Binding("1001", "sip:1001@a", ("198.51.100.1", 5060), "tcp", now + 50, None, "c", 1),
        Binding("1002", "sip:1002@b", ("198.51.100.2", 5060), "udp", now - 1, None, "c", 1),
    ])
    assert [b.aor for b in env.reg.all_bindings()] == ["1001"]
    gone = env.reg.drop_source(("198.51.100.1", 5060), "tcp")
    assert [b.contact_uri for b in gone] == ["sip:1001@a"] and env.reg.all_bindings() == []
