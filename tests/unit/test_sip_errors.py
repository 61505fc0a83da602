"""Stateless 400/513 replies for messages sippy cannot parse."""

import re

from appliance.sip.errors import build_error_response, problem_with, reply_to_unparseable

REQ = (b"REGISTER sip:pbx SIP/2.0\r\n"
       b"Via: SIP/2.0/UDP 10.1.1.1:5062;rport;branch=z9hG4bK1\r\n"
       b"v: SIP/2.0/UDP proxy:5060;branch=z9hG4bK0\r\n"
       b"f: <sip:1001@pbx>;tag=aa\r\n"
       b"t: <sip:1001@pbx>\r\n"
       b"i: cid-1\r\n"
       b"CSeq: 7 REGISTER\r\n"
       b"Contact: <sip:1001@10.1.1.1:5062>\r\n"
       b"User-Agent: caf\xe9\xff\r\n"
       b"Content-Length: 0\r\n\r\n")


def test_problem_with():
    assert problem_with(REQ) == (400, "Bad Request - Invalid UTF-8")
    assert problem_with(b"x" * 70000) == (513, "Message Too Large")
    assert problem_with(REQ.replace(b"\xe9\xff", b"e")) is None


def test_400_from_non_utf8_request_copies_matching_headers():
    sent = []
    assert reply_to_unparseable(REQ, ("192.0.2.7", 40000), lambda d, a: sent.append((d, a)))
    data, addr = sent[0]
    assert addr == ("192.0.2.7", 40000)
    text = data.decode()
    lines = text.split("\r\n")
    assert lines[0] == "SIP/2.0 400 Bad Request - Invalid UTF-8"
    assert lines[1] == ("Via: SIP/2.0/UDP 10.1.1.1:5062;rport=40000;branch=z9hG4bK1"
                        ";received=192.0.2.7")
    assert lines[2] == "Via: SIP/2.0/UDP proxy:5060;branch=z9hG4bK0"
    assert "From: <sip:1001@pbx>;tag=aa" in lines
    assert any(line.startswith("To: <sip:1001@pbx>;tag=") for line in lines)
    assert "Call-ID: cid-1" in lines and "CSeq: 7 REGISTER" in lines
    assert text.endswith("Content-Length: 0\r\n\r\n")
    # The reply parses with sippy (a client could match it to its transaction).
    from sippy.SipResponse import SipResponse
    resp = SipResponse(text)
    assert resp.getSCode()[0] == 400
    assert resp.getHFBody("via").getBranch() == "z9hG4bK1"


def test_513_for_oversize():
    big = REQ.replace(b"\xe9\xff", b"e").replace(b"Content-Length: 0", b"Content-Length: 70000")
    big += b"b" * 70000
    sent = []
    reply_to_unparseable(big, ("192.0.2.7", 5060), lambda d, a: sent.append(d))
    assert sent[0].startswith(b"SIP/2.0 513 Message Too Large\r\n")


def test_unanswerable_messages_are_dropped():
    send = []
    for junk in (
        b"\x00\x01\x02garbage" * 10,
        REQ.replace(b"REGISTER sip:pbx", b"ACK sip:pbx"),     # never answer ACK
        b"SIP/2.0 200 OK\r\n" + REQ.split(b"\r\n", 1)[1],      # never answer responses
        re.sub(rb"(?:Via|v): [^\r]*\r\n", b"", REQ),                # no Via: nowhere to reply
    ):
        assert not reply_to_unparseable(junk, ("192.0.2.7", 5060), lambda d, a: send.append(d))
    assert send == []


def test_reply_without_the_missing_header():
    """A request missing Call-ID (or with it garbled) still gets its 400, without Call-ID."""
    for req in (REQ.replace(b"i: cid-1\r\n", b""), REQ.replace(b"i: cid-1", b"i: cid-\xff")):
        out = build_error_response(req, 400, "Bad Request - Missing Call-ID", ("192.0.2.7", 5060))
        assert out is not None and out.startswith(b"SIP/2.0 400 ")
        assert b"\r\nCall-ID:" not in out and b"CSeq: " in out and b"Via: " in out


def test_existing_to_tag_kept_and_lf_only_framing():
    req = REQ.replace(b"t: <sip:1001@pbx>", b"t: <sip:1001@pbx>;tag=zz").replace(b"\r\n", b"\n")
    out = build_error_response(req, 400, "Bad Request", None)
    assert b"To: <sip:1001@pbx>;tag=zz\r\n" in out
    assert b"received=" not in out


def test_via_without_a_value_is_nowhere_to_reply():
    """ "Via: ," holds no Via value: no reply (it raised IndexError, killing the sip-tcp thread)."""
    clean = REQ.replace(b"\xe9\xff", b"e")
    for via in (b",", b" , ,"):
        req = re.sub(rb"(?:Via|v): [^\r]*\r\n", b"", clean).replace(b"f: ", b"Via:" + via + b"\r\nf: ")
        assert build_error_response(req, 400, "Bad Request", ("192.0.2.7", 5060)) is None


def test_header_block_bounds():
    from appliance.sip.errors import MAX_HEADER_LINE, MAX_HEADERS, request_problem

    clean = REQ.replace(b"\xe9\xff", b"e")
    many = clean.replace(b"Contact:", b"X-A: 1\r\n" * MAX_HEADERS + b"Contact:")
    assert request_problem(many) == (400, "Bad Request - Too many headers")
    long = clean.replace(b"User-Agent: cafe", b"User-Agent: " + b"x" * (MAX_HEADER_LINE + 1))
    assert request_problem(long) == (400, "Bad Request - Header too long (user-agent)")
    assert request_problem(clean) is None


def test_via_with_only_commas_is_not_answered_and_does_not_raise():
    # Found by fuzz/sip_request: "Via: ," is a Via header with no value; building the 400 took
    # vias[0] of an empty list (IndexError out of the transport's receive path).
    sent: list[bytes] = []
    for via in (b"Via: ,", b"v: , ,", b"Via:  "):
        req = b"OPTIONS sip:pbx SIP/2.0\r\n" + via + b"\r\nCall-ID: a\r\nCSeq: 1 OPTIONS\r\n\r\n"
        assert not reply_to_unparseable(req, ("192.0.2.7", 5060), lambda d, a: sent.append(d))
    assert sent == []
