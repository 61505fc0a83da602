"""DigestAuthenticator: RFC 7616 §3.9.1 vectors, challenges, verification, replay."""

import re

import pytest

from appliance.sip.digest import DigestAuthenticator, compute_response, parse_digest

KEY = b"k" * 32
REALM = "pbx.example"
SECRETS = {"1001": "secret1001"}


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


# RFC 7616 §3.9.1 (same inputs, two algorithms).
RFC = {"username": "Mufasa", "realm": "http-auth@example.org", "password": "Circle of Life",
           "method": "GET", "uri": "/dir/index.html",
           "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "nc": "00000001",
           "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", "qop": "auth"}


@pytest.mark.parametrize("alg,expected", [
    ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
])
def test_rfc7616_vectors(alg, expected):
    assert compute_response(alg, **RFC) == expected


def test_rfc2069_style_without_qop_matches_hand_computation():
    import hashlib
    h = lambda s: hashlib.md5(s.encode()).hexdigest()
    ha1, ha2 = h("a:r:p"), h("REGISTER:sip:r")
    assert compute_response("MD5", "a", "r", "p", "REGISTER", "sip:r", "n") == h(f"{ha1}:n:{ha2}")


def test_unknown_algorithm_raises():
    with pytest.raises(ValueError):
        compute_response("SHA-1", **RFC)


def test_challenge_sha256_first_with_qop_and_opaque():
    auth = DigestAuthenticator(REALM, KEY)
    ch = auth.challenge()
    assert [n for n, _ in ch] == ["WWW-Authenticate", "WWW-Authenticate"]
    p1, p2 = parse_digest(ch[0][1]), parse_digest(ch[1][1])
    assert p1["algorithm"] == "SHA-256" and p2["algorithm"] == "MD5"  # RFC 8760 §2.4
    assert p1["qop"] == "auth" and p1["realm"] == REALM and p1["opaque"] == auth.opaque
    assert p1["nonce"] == p2["nonce"]
    assert "stale" not in p1
    stale = auth.challenge(stale=True, proxy=True)
    assert stale[0][0] == "Proxy-Authenticate" and re.search(r"stale=true", stale[0][1])


def _answer(auth, alg="SHA-256", user="1001", password="secret1001", nc="00000001",
            method="REGISTER", uri="sip:pbx.example", nonce=None, realm=REALM, opaque=True,
            qop="auth"):
    nonce = nonce or parse_digest(auth.challenge()[0][1])["nonce"]
    cnonce = "0a4f113b"
    resp = compute_response(alg, user, realm, password, method, uri, nonce, nc, cnonce, qop)
    v = (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
         f'response="{resp}", algorithm={alg}, cnonce="{cnonce}", nc={nc}')
    if qop:
        v += f", qop={qop}"
    if opaque:
        v += f', opaque="{auth.opaque}"'
    return v


@pytest.mark.parametrize("alg", ["SHA-256", "MD5"])
def test_verify_ok(alg):
    auth = DigestAuthenticator(REALM, KEY)
    r = auth.verify("REGISTER", _answer(auth, alg), SECRETS.get, request_uri="sip:pbx.example")
    assert r.ok and r.username == "1001" and not r.stale and r.algorithm == alg


def test_verify_sippy_serialised_header():
    # sippy re-serialises Authorization as 'Digest username="..",realm=..' without spaces.
    from sippy.SipAuthorization import SipAuthorization
    auth = DigestAuthenticator(REALM, KEY)
    hf = SipAuthorization(body=_answer(auth, "MD5"))
    hf.parse()
    assert auth.verify("REGISTER", str(hf), SECRETS.get).ok


@pytest.mark.parametrize("kwargs,reason", [
    ({"password": "wrong"}, "wrong response"),
    ({"user": "9999"}, "unknown user"),
    ({"realm": "other"}, "wrong realm"),
    ({"alg": "MD5-sess"}, "unsupported algorithm MD5-sess"),
    ({"qop": None}, "qop=auth required"),
    ({"nc": "1"}, "bad nc/cnonce"),
])
def test_verify_rejects(kwargs, reason):
    auth = DigestAuthenticator(REALM, KEY)
    if kwargs.get("alg") == "MD5-sess":
        value = _answer(auth, "MD5").replace("algorithm=MD5", "algorithm=MD5-sess")
    else:
        value = _answer(auth, **kwargs)
    r = auth.verify("REGISTER", value, SECRETS.get)
    assert not r.ok and not r.stale and r.reason == reason


def test_missing_fields_and_garbage():
    auth = DigestAuthenticator(REALM, KEY)
    assert auth.verify("REGISTER", "Basic Zm9vOmJhcg==", SECRETS.get).reason == \
        "not a Digest credential"
    no_uri = re.sub(r'uri="[^"]*", ', "", _answer(auth))
    assert auth.verify("REGISTER", no_uri, SECRETS.get).reason == "missing uri"
    bad_opaque = _answer(auth, opaque=False) + ', opaque="nope"'
    assert auth.verify("REGISTER", bad_opaque, SECRETS.get).reason == "opaque mismatch"
    assert auth.verify("REGISTER", _answer(auth, opaque=False), SECRETS.get).ok
    wrong = auth.verify("REGISTER", _answer(auth), SECRETS.get, request_uri="sip:elsewhere")
    assert wrong.uri_mismatch and not wrong.ok
    assert not auth.verify("INVITE", _answer(auth), SECRETS.get).ok  # method is signed


def test_digest_uri_must_name_the_request_uri():
    """RFC 2617 §3.2.2.5 / RFC 7616 §3.4.6; compared in sippy's canonical form."""
    from appliance.sip.digest import same_uri

    assert same_uri("sip:pbx.example", "sip:pbx.example")
    assert same_uri("sip:1002@pbx.example:5060;transport=udp", "sip:1002@pbx.example:5060;transport=udp")
    assert not same_uri("sip:1003@pbx.example", "sip:1002@pbx.example")
    assert not same_uri("sip:pbx.example:5070", "sip:pbx.example")
    assert not same_uri("not a uri", "sip:pbx.example")
    assert not same_uri("", "sip:pbx.example")


def test_expired_nonce_is_stale_only_if_response_correct():
    clock = Clock()
    auth = DigestAuthenticator(REALM, KEY, nonce_ttl=300, clock=clock)
    good, bad = _answer(auth), _answer(auth, password="wrong")
    clock.t += 301
    r = auth.verify("REGISTER", good, SECRETS.get)
    assert not r.ok and r.stale and r.reason == "nonce expired"
    r = auth.verify("REGISTER", bad, SECRETS.get)
    assert not r.ok and not r.stale


def test_nonce_from_other_key_is_stale_same_key_survives_restart():
    a1 = DigestAuthenticator(REALM, KEY)
    value = _answer(a1)
    restarted = DigestAuthenticator(REALM, KEY)
    assert restarted.verify("REGISTER", value, SECRETS.get).ok
    rotated = DigestAuthenticator(REALM, b"z" * 32)
    v2 = _answer(a1, nc="00000002").replace(a1.opaque, rotated.opaque)
    r = rotated.verify("REGISTER", v2, SECRETS.get)
    assert r.stale and r.reason == "nonce not issued by us"


def test_tampered_nonce_rejected():
    auth = DigestAuthenticator(REALM, KEY)
    nonce = parse_digest(auth.challenge()[0][1])["nonce"]
    forged = ("A" if nonce[0] != "A" else "B") + nonce[1:]
    r = auth.verify("REGISTER", _answer(auth, nonce=forged), SECRETS.get)
    assert not r.ok and r.reason == "nonce not issued by us"


def test_nc_replay_rejected_reorder_within_window_accepted():
    auth = DigestAuthenticator(REALM, KEY)
    nonce = parse_digest(auth.challenge()[0][1])["nonce"]
    ok = lambda nc: auth.verify("REGISTER", _answer(auth, nonce=nonce, nc=nc), SECRETS.get)
    assert ok("00000001").ok
    r = ok("00000001")
    assert not r.ok and r.stale and r.reason == "nonce count replayed"
    assert ok("00000003").ok
    assert ok("00000002").ok  # late but unseen
    assert not ok("00000002").ok
    assert ok("00000050").ok
    assert not ok("00000003").ok  # 0x50 - 3 >= 64: out of window


def test_tracking_is_bounded_and_evicted_nonces_go_stale():
    clock = Clock()
    auth = DigestAuthenticator(REALM, KEY, clock=clock, max_tracked_nonces=3)
    nonces = []
    for _ in range(5):
        nonces.append(parse_digest(auth.challenge()[0][1])["nonce"])
        clock.t += 1
    for n in nonces:
        assert auth.verify("REGISTER", _answer(auth, nonce=n), SECRETS.get).ok
    assert len(auth._nc) <= 3
    # The first nonce's replay window was evicted: it must not be accepted again.
    r = auth.verify("REGISTER", _answer(auth, nonce=nonces[0], nc="00000009"), SECRETS.get)
    assert not r.ok and r.stale


def test_parse_digest_quoting():
    p = parse_digest('Digest username="a\\"b", uri="sip:x;a=1,b", qop=auth,nc=00000001')
    assert p == {"username": 'a"b', "uri": "sip:x;a=1,b", "qop": "auth", "nc": "00000001"}
    assert parse_digest('Digest realm="a", realm="b"') is None
    assert parse_digest("Digest") is None


def test_bad_key_rejected():
    with pytest.raises(ValueError):
        DigestAuthenticator(REALM, b"short")


def _nonce(auth):
    return parse_digest(auth.challenge()[0][1])["nonce"]


def test_nonce_reused_with_increasing_nc_until_its_lifetime_ends():
    """RFC 7616 §3.4 / RFC 2617 §3.2.2: one challenge serves many requests, each with nc+1;
    past nonce_ttl the same correct answer is stale (RFC 7616 §3.3), never ok."""
    clock = Clock()
    auth = DigestAuthenticator(REALM, KEY, nonce_ttl=300, clock=clock)
    nonce = _nonce(auth)
    for i in range(1, 6):
        clock.t += 50
        r = auth.verify("INVITE", _answer(auth, nonce=nonce, nc=f"{i:08x}", method="INVITE"), SECRETS.get)
        assert r.ok, (i, r.reason)
    clock.t += 51  # 301 s after issue
    r = auth.verify("INVITE", _answer(auth, nonce=nonce, nc="00000006", method="INVITE"), SECRETS.get)
    assert not r.ok and r.stale and r.reason == "nonce expired"
    assert auth.verify("INVITE", _answer(auth, nc="00000001", method="INVITE"), SECRETS.get).ok


def test_same_nc_is_refused_whatever_the_method_or_uri():
    auth = DigestAuthenticator(REALM, KEY)
    nonce = _nonce(auth)
    assert auth.verify("INVITE", _answer(auth, nonce=nonce, method="INVITE"), SECRETS.get).ok
    again = _answer(auth, nonce=nonce, method="SUBSCRIBE", uri="sip:1001@pbx.example")
    r = auth.verify("SUBSCRIBE", again, SECRETS.get)
    assert not r.ok and r.stale and r.reason == "nonce count replayed"


def test_nonce_uses_are_bounded():
    auth = DigestAuthenticator(REALM, KEY, max_nonce_uses=3)
    nonce = _nonce(auth)
    for i in range(1, 4):
        assert auth.verify("REGISTER", _answer(auth, nonce=nonce, nc=f"{i:08x}"), SECRETS.get).ok
    r = auth.verify("REGISTER", _answer(auth, nonce=nonce, nc="00000004"), SECRETS.get)
    assert not r.ok and r.stale and r.reason == "nonce used too often"
    with pytest.raises(ValueError):
        DigestAuthenticator(REALM, KEY, max_nonce_uses=0)


def test_nonce_belongs_to_the_first_user_who_answers_it():
    secrets = {"1001": "secret1001", "1002": "secret1002"}
    auth = DigestAuthenticator(REALM, KEY)
    nonce = _nonce(auth)
    assert auth.verify("REGISTER", _answer(auth, nonce=nonce), secrets.get).ok
    other = _answer(auth, nonce=nonce, user="1002", password="secret1002", nc="00000002")
    r = auth.verify("REGISTER", other, secrets.get)
    assert not r.ok and r.stale and r.reason == "nonce issued to another user"
    # The owner is not disturbed: its next count still passes.
    assert auth.verify("REGISTER", _answer(auth, nonce=nonce, nc="00000002"), secrets.get).ok


def test_nonce_of_another_realm_is_refused():
    """The MAC covers the realm: a nonce issued for one realm is not ours in another."""
    ours, theirs = DigestAuthenticator(REALM, KEY), DigestAuthenticator("other.example", KEY)
    foreign = _nonce(theirs)
    r = ours.verify("REGISTER", _answer(ours, nonce=foreign), SECRETS.get)
    assert not r.ok and r.stale and r.reason == "nonce not issued by us"
    as_theirs = _answer(theirs, nonce=_nonce(ours), realm="other.example")
    r = theirs.verify("REGISTER", as_theirs, SECRETS.get)
    assert not r.ok and r.reason == "nonce not issued by us"


def test_flood_of_random_nonces_keeps_memory_bounded():
    import base64
    import os

    auth = DigestAuthenticator(REALM, KEY, max_tracked_nonces=50)
    for _ in range(2000):
        forged = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
        r = auth.verify("REGISTER", _answer(auth, nonce=forged), SECRETS.get)
        assert not r.ok and r.reason == "nonce not issued by us"
    assert len(auth._nc) == 0  # a nonce we did not issue costs no memory
    for _ in range(2000):  # correct answers to genuine nonces: the table stays capped
        assert auth.verify("REGISTER", _answer(auth), SECRETS.get).ok
    assert len(auth._nc) <= 50
