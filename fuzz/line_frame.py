"""Line-board frames (hw/frames.py over hw/cobs.py): what a board sends up its serial link.

Contract: ``Deframer.feed`` never raises (errors come back in place, as FrameError values);
``decode_frame`` and ``decode_body`` raise only FrameError; a decoded message encodes back and
decodes to the same frame. The second half of each input gets a valid CRC, so the fuzzer gets
past the checksum into the payload parsers.
"""

from __future__ import annotations

import struct

from fuzz.harness import Target, instrumented, main

with instrumented():
    from hw import cobs, frames

_deframer = frames.Deframer()


def _roundtrip(frame: frames.Frame) -> None:
    again = frames.decode_frame(frames.encode_frame(frame.message, frame.seq)[:-1])
    if again != frame:
        raise AssertionError(f"{frame!r} re-encodes as {again!r}")


def one_input(data: bytes) -> None:
    for item in _deframer.feed(data):
        if isinstance(item, frames.Frame):
            _roundtrip(item)
        elif not isinstance(item, frames.FrameError):
            raise AssertionError(f"Deframer returned {item!r}")
    try:
        _roundtrip(frames.decode_frame(data.split(b"\0", 1)[0]))
    except frames.FrameError:
        pass
    body = data + struct.pack(">H", frames.crc16_ccitt_false(data))
    _roundtrip(frames.decode_body(body))
    if cobs.decode(cobs.encode(body)) != body:
        raise AssertionError(f"COBS does not round-trip {body!r}")


TARGET = Target("line_frame", __doc__ or "", one_input, (frames.FrameError,))

if __name__ == "__main__":
    main(TARGET)
