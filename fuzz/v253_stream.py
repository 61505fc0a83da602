"""The V.253 byte stream from a voice modem (hw/v253.py) and the driver's handling of it
(hw/modem.py), chunked at fuzzer-chosen points as a serial port would deliver it.

Contract: ``V253Parser.feed`` never raises and keeps lines within MAX_LINE; the driver's
handling of each token raises only ModemError (a line that does not fit the state, or a command
it cannot send: the port here is absent, so every command fails with PortLost).
"""

from __future__ import annotations

from fuzz.harness import Target, instrumented, main

with instrumented():
    from hw import modem, v253

_STATES = list(modem.ModemState)


def one_input(data: bytes) -> None:
    if len(data) < 3:
        return
    state, cut, flags, stream = _STATES[data[0] % len(_STATES)], data[1], data[2], data[3:]
    parser = v253.V253Parser()
    parser.expect_stream = bool(flags & 1)
    events: list[modem.ModemEvent] = []
    driver = modem.VoiceModem("loop://", events.append, command_timeout=0.01)
    driver._state = state  # the state the line is in when these bytes arrive
    driver.duplex = bool(flags & 2)
    step = cut % 17 + 1
    for i in range(0, len(stream), step):
        for tok in parser.feed(stream[i:i + step]):
            if isinstance(tok, v253.Line) and len(tok.text) > v253.MAX_LINE:
                raise AssertionError(f"line of {len(tok.text)} characters")
            try:
                driver._handle(tok)
            except modem.ModemError:
                pass


TARGET = Target("v253_stream", __doc__ or "", one_input)

if __name__ == "__main__":
    main(TARGET)
