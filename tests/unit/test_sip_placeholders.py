"""sippy's own-address placeholders answered without dir(): the same text out, in every case."""
from __future__ import annotations

import importlib
from collections.abc import Callable

import pytest
from sippy.SdpOrigin import SdpOrigin
from sippy.SipConf import MyAddress, MyPort, MyTransport, SipConf
from sippy.SipURL import SipURL
from sippy.SipVia import SipVia

from appliance.sip.sippy_placeholders import (
    CHECKING_MODULES,
    AttributeNames,
    use_fast_placeholder_checks,
)

LOCAL = (("192.0.2.7", 5070), "udp")
LOCAL_TCP = (("192.0.2.7", 5070), "tcp")


def _written() -> list[str]:
    """Headers sippy writes, with and without placeholders, with and without a local address."""
    out: list[str] = []
    for local in (None, LOCAL, LOCAL_TCP):
        mine = SipVia()  # sippy's own Via: MyAddress, MyPort, MyTransport
        out.append(mine.localStr(local))
        theirs = SipVia("SIP/2.0/UDP 198.51.100.1:5062;branch=z9hG4bK-1;rport")
        theirs.parse()
        out.append(theirs.localStr(local))
        out.append(SipURL(username="1002", host=MyAddress(), port=MyPort(5060)).localStr(local))
        url = SipURL(username="1002", host=MyAddress(), port=MyPort(5060))
        url.transport = MyTransport("udp")
        out.append(url.localStr(local))
        out.append(SipURL("sip:1002@198.51.100.1:5062;transport=tcp").localStr(local))
        out.append(SipURL("sip:1002@198.51.100.1:5060").localStr(local))
        origin = SdpOrigin()
        origin.address = MyAddress()
        out.append(origin.localStr(local).split(" ", 3)[3])  # session id/version are random
    return out


def _with_builtin_dir(fn: Callable[[], list[str]]) -> list[str]:
    saved = {}
    for name in CHECKING_MODULES:
        module = importlib.import_module(name)
        saved[name] = module.__dict__.pop("dir", None)
    try:
        return fn()
    finally:
        for name, value in saved.items():
            if value is not None:
                importlib.import_module(name).dir = value


def test_sippy_writes_the_same_headers_with_the_fast_checks() -> None:
    reference = _with_builtin_dir(_written)
    use_fast_placeholder_checks()
    assert _written() == reference
    assert "SIP/2.0/UDP 192.0.2.7:5070" in reference[7]  # the placeholders were replaced


@pytest.mark.parametrize("value", ["127.0.0.1", 5060, None, MyAddress(), MyPort(5060), MyTransport("udp")])
def test_the_membership_answer_is_dirs(value: object) -> None:
    names = AttributeNames(value)
    assert ("my" in names) == ("my" in dir(value))
    assert ("upper" in names) == ("upper" in dir(value))
    assert 5 not in names
    assert list(names) == dir(value) and len(names) == len(dir(value))


def test_port_needed_keeps_its_answer() -> None:
    use_fast_placeholder_checks()
    default = SipConf.default_port
    assert not SipConf.port_needed(default, MyTransport("udp"), SipConf.default_transport)
    assert SipConf.port_needed(default, "udp", SipConf.default_transport)
    assert SipConf.port_needed(5070, MyTransport("udp"), SipConf.default_transport)
