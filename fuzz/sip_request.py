"""SIP requests over UDP, from bytes through sippy's parser, our transaction manager, router,
registrar and switchboard to a dialog (fuzz/sip_rig.py builds them without sockets).

The first octet picks the source: the trunk (INVITEs reach the dial plan without digest auth)
or a phone. Several inputs share one rig, so in-dialog requests can meet the dialogs that
earlier INVITEs made; the rig is rebuilt every few hundred inputs to bound its state.

Contract: ``handleIncoming`` never raises (a bad message gets a 4xx or is dropped, never a
traceback in the log), and everything it sends goes to an address ``sendto`` accepts and is a
SIP message.
"""

from __future__ import annotations

from fuzz.harness import Target, instrumented, main

with instrumented():
    import sippy.SipTransactionManager

    from fuzz.sip_rig import PHONE, TRUNK, SipRig


class ParseLog:
    """Counts the tracebacks sippy prints for messages it cannot parse (issue 12 finding 8: that
    log flood is the SIP edge's to fix); here they are kept out of the fuzzer's output."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, msg: str = "", *args: object, **kwargs: object) -> None:
        self.count += 1


sippy.SipTransactionManager.dump_exception = ParseLog()  # type: ignore[attr-defined]

REBUILD_EVERY = 500
_rig: SipRig | None = None
_inputs = 0


def one_input(data: bytes) -> None:
    global _rig, _inputs
    if not data:
        return
    if _rig is None or _inputs % REBUILD_EVERY == 0:
        if _rig is not None:
            _rig.close()
        _rig = SipRig()
    _inputs += 1
    _rig.server.sent.clear()
    _rig.receive(data[1:], TRUNK if data[0] & 1 else PHONE)
    for payload, _addr in _rig.server.sent:
        first = payload.split(b"\r\n", 1)[0]
        if not (first.startswith(b"SIP/2.0 ") or first.endswith(b" SIP/2.0")):
            raise AssertionError(f"sent something that is not SIP: {first!r}")


TARGET = Target("sip_request", __doc__ or "", one_input)

if __name__ == "__main__":
    main(TARGET)
