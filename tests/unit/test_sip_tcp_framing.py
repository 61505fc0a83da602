"""StreamFramer: RFC 3261 §18.3 framing of SIP over TCP, keep-alives, limits."""

from appliance.sip.tcp_transport import (
    FrameError,
    KeepAlivePing,
    SipFrame,
    StreamFramer,
    top_via_branch,
)


def msg(body: bytes = b"", cl: bool = True, extra: bytes = b"", compact: bool = False) -> bytes:
    head = (b"MESSAGE sip:1001@pbx SIP/2.0\r\n"
            b"Via: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bKabc\r\n"
            b"From: <sip:a@pbx>;tag=1\r\nTo: <sip:1001@pbx>\r\nCall-ID: c1\r\n"
            b"CSeq: 1 MESSAGE\r\n" + extra)
    if cl:
        head += (b"l: %d\r\n" if compact else b"Content-Length: %d\r\n") % len(body)
    return head + b"\r\n" + body


def test_byte_by_byte_and_two_in_one_segment():
    m1, m2 = msg(b"hello\r\n\r\nworld"), msg(b"")
    f = StreamFramer()
    out = []
    for i in range(len(m1)):
        out += f.feed(m1[i:i + 1])
    assert out == [SipFrame(m1)]
    assert f.feed(m2 + m1) == [SipFrame(m2), SipFrame(m1)]


def test_split_inside_header_terminator_and_body():
    m = msg(b"x" * 100, compact=True)
    f = StreamFramer()
    cut = m.index(b"\r\n\r\n") + 2
    assert f.feed(m[:cut]) == []
    assert f.feed(m[cut:cut + 50]) == []
    assert f.feed(m[cut + 50:]) == [SipFrame(m)]


def test_keepalive_ping_and_stray_crlf():
    f = StreamFramer()
    assert f.feed(b"\r\n") == []          # could be half a ping
    assert f.feed(b"\r\n") == [KeepAlivePing()]
    m = msg()
    assert f.feed(b"\r\n" + m) == [SipFrame(m)]  # lone CRLF before a message is skipped
    assert f.feed(b"\r\n\r\n\r\n\r\n") == [KeepAlivePing(), KeepAlivePing()]


def test_missing_content_length_is_400_and_stream_stops():
    f = StreamFramer()
    out = f.feed(msg(cl=False) + msg())
    assert len(out) == 1 and isinstance(out[0], FrameError)
    assert out[0].code == 400 and b"Call-ID: c1" in out[0].head
    assert f.failed and f.feed(msg()) == []


def test_conflicting_or_bad_content_length_is_400():
    for extra in (b"Content-Length: 3\r\n", b"Content-Length: -1\r\n"):
        out = StreamFramer().feed(msg(extra=extra))
        assert isinstance(out[0], FrameError) and out[0].code == 400


def test_oversize_body_and_endless_headers_are_513():
    out = StreamFramer(max_size=1000).feed(msg(b"y" * 2000))
    assert isinstance(out[0], FrameError) and out[0].code == 513
    f = StreamFramer(max_size=1000)
    out = f.feed(b"INVITE sip:x SIP/2.0\r\n" + b"X-Pad: " + b"p" * 1200)
    assert isinstance(out[0], FrameError) and out[0].code == 513


def test_exactly_at_limit_is_accepted():
    m = msg(b"z" * 10)
    assert StreamFramer(max_size=len(m)).feed(m) == [SipFrame(m)]


def test_top_via_branch():
    data = msg().replace(b"Via:", b"v:") + b""
    assert top_via_branch(msg()) == b"z9hG4bKabc"
    assert top_via_branch(data) == b"z9hG4bKabc"
    assert top_via_branch(b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n") is None
