"""COBS and CRC golden vectors, frame round trips, and the bad frames a receiver must drop."""
from __future__ import annotations

import pytest

from hw import cobs
from hw.crc import crc16_ccitt_false
from hw.frames import (
    AUDIO_BYTES,
    Ack,
    AckStatus,
    Audio,
    BAudio,
    BusyTone,
    Cadence,
    CallerId,
    Caps,
    CidMode,
    CrcError,
    Deframer,
    DChan,
    Dial,
    Dtmf,
    Flash,
    Frame,
    FramingError,
    Hello,
    OffHookEvent,
    OffhookCommand,
    OnHookEvent,
    OnhookCommand,
    PayloadError,
    Ping,
    Polarity,
    Pong,
    PortCaps,
    PortKind,
    PortStatus,
    Ring,
    RingStart,
    RingStop,
    SetGain,
    Status,
    StopRing,
    Tone,
    ToneKind,
    UnknownType,
    decode_body,
    decode_frame,
    encode_frame,
    frame_body,
)

# Cheshire & Baker's examples as Wikipedia lists them (data, encoding).
COBS_VECTORS = [
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
    (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255))),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
    (bytes(range(3, 256)) + b"\x00\x01", b"\xfe" + bytes(range(3, 256)) + b"\x02\x01"),
]


@pytest.mark.parametrize("data,encoded", COBS_VECTORS)
def test_cobs_golden_vectors(data: bytes, encoded: bytes) -> None:
    assert cobs.encode(data) == encoded
    assert cobs.decode(encoded) == data
    assert 0 not in cobs.encode(data)


def test_cobs_decoder_accepts_trailing_empty_group_after_full_block() -> None:
    # Some encoders end a 254-byte block with an extra 0x01 group; both forms mean the same.
    assert cobs.decode(b"\xff" + bytes(range(1, 255)) + b"\x01") == bytes(range(1, 255))


@pytest.mark.parametrize("bad", [b"", b"\x00", b"\x05\x11\x22", b"\x03\x11\x00", b"\x02\x11\x05"])
def test_cobs_rejects_invalid(bad: bytes) -> None:
    with pytest.raises(cobs.CobsError):
        cobs.decode(bad)


def test_crc16_ccitt_false_check_values() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1  # the catalogue check value
    assert crc16_ccitt_false(b"") == 0xFFFF
    assert crc16_ccitt_false(b"56789", crc16_ccitt_false(b"1234")) == 0x29B1


def test_protocol_example_hello_and_caps() -> None:
    """The example of hw/PROTOCOL.md, byte for byte."""
    hello = frame_body(Hello(1), 0)  # this host asks for BAUDIO: features byte 0x01
    assert hello[:5] == bytes.fromhex("0100ff0101")
    assert hello[5:] == crc16_ccitt_false(hello[:5]).to_bytes(2, "big")
    # A host that asks for nothing sends v1's one-byte HELLO (CRC 0xE1AA, firmware/tests/test_framing.c).
    assert frame_body(Hello(1, features=0), 0) == bytes.fromhex("0100ff01e1aa")
    assert decode_body(bytes.fromhex("0100ff01e1aa")) == Frame(0, Hello(1, features=0))
    caps_head = bytes.fromhex("0200ff0101000201010201") + b"\x06VB0001"
    wire = cobs.encode(caps_head + crc16_ccitt_false(caps_head).to_bytes(2, "big"))
    frame = decode_frame(wire)
    assert frame == Frame(0, Caps(1, 1, 0, (PortCaps(PortKind.FXS, 1), PortCaps(PortKind.FXO, 1)), "VB0001"))


MESSAGES = [
    Hello(1), Caps(1, 2, 3, (PortCaps(PortKind.FXS, 1), PortCaps(PortKind.BRI, 3)), "SN42"),
    Ack(17, AckStatus.BAD_STATE), Ping(0xDEADBEEF), Pong(0), Status((PortStatus(1, -120, 0), PortStatus(2, 32767, 5))),
    Ring(3, Cadence.UK, CidMode.ETSI_FSK, "0612345678", "Zoé Dupont"), StopRing(3), OffhookCommand(1),
    OnhookCommand(1), Dial(1, "0140*#9"), SetGain(2, -12, 12), Tone(0, ToneKind.CONGESTION),
    OffHookEvent(0), OnHookEvent(15), Flash(0), RingStart(1), RingStop(1), CallerId(1, "0612", "Éric"),
    Polarity(1, True), Dtmf(0, "#", 120), Dtmf(0, "D", 40), BusyTone(1), Audio(0, bytes(range(160))),
    DChan(4, b"\x02\x01\x7f"), DChan(4, b"\x00" * 264), Hello(1, features=0), BAudio(2, 1, bytes(range(160))),
    BAudio(15, 2, b"\xff" * 160),
]


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip_every_type(msg: object) -> None:
    wire = encode_frame(msg, 200)  # type: ignore[arg-type]
    assert wire.endswith(b"\x00") and 0 not in wire[:-1]
    assert decode_frame(wire[:-1]) == Frame(200, msg)  # type: ignore[arg-type]


def test_deframer_survives_noise_and_counts_errors() -> None:
    good = encode_frame(Ping(7), 1)
    corrupt = bytearray(encode_frame(Pong(7), 2))
    corrupt[3] ^= 0x40  # one flipped bit: the CRC catches it
    stream = b"\x00\x00" + good + bytes(corrupt) + b"\x07\x01\x02\x00" + good
    dec = Deframer()
    out = []
    for i in range(0, len(stream), 3):  # split anywhere: framing only depends on 0x00
        out += dec.feed(stream[i:i + 3])
    assert [type(x).__name__ for x in out] == ["Frame", "CrcError", "FramingError", "Frame"]


def test_deframer_drops_an_endless_frame_once() -> None:
    dec = Deframer()
    assert dec.feed(b"\x01" * 2000) == []
    out = dec.feed(b"\x00" + encode_frame(Ping(1), 0))
    assert isinstance(out[0], FramingError) and isinstance(out[1], Frame)


def _wire(body: bytes) -> bytes:
    return cobs.encode(body + crc16_ccitt_false(body).to_bytes(2, "big"))


@pytest.mark.parametrize("body,error", [
    (bytes.fromhex("99"), FramingError),  # shorter than 5 bytes decoded
    (bytes.fromhex("7f00ff"), UnknownType),
    (bytes.fromhex("0400ff0102"), PayloadError),  # PING with a 2-byte token
    (bytes.fromhex("0400ff010203040506"), PayloadError),  # trailing bytes
    (bytes.fromhex("300000") + b"\x01" * 159, PayloadError),  # AUDIO must be 160 bytes
    (bytes.fromhex("270000") + b"X\x00\x10", PayloadError),  # not a DTMF digit
    (bytes.fromhex("200010"), PayloadError),  # port 16
    (bytes.fromhex("0300ff0109"), PayloadError),  # unknown ACK status
    (bytes.fromhex("0600ff010203"), PayloadError),  # STATUS not 4 bytes per port
    (bytes.fromhex("32000003") + b"\x01" * 160, PayloadError),  # BAUDIO: B channel 3 on a BRI
    (bytes.fromhex("32000001") + b"\x01" * 159, PayloadError),  # BAUDIO must carry 160 bytes
])
def test_bad_frames_raise_typed_errors(body: bytes, error: type) -> None:
    with pytest.raises(error):
        decode_frame(_wire(body))


def test_oversized_and_crc_errors() -> None:
    with pytest.raises(FramingError):
        decode_frame(_wire(bytes.fromhex("3100ff") + b"\x01" * 321))
    wire = bytearray(_wire(bytes.fromhex("0400ff01020304")))
    wire[-1] ^= 1
    with pytest.raises(CrcError):
        decode_frame(bytes(wire))


def test_other_protocol_version_caps_decodes_only_its_version() -> None:
    frame = decode_frame(_wire(bytes.fromhex("0200ff02") + b"whatever v2 says"))
    assert frame.message == Caps(2)


@pytest.mark.parametrize("msg", [Audio(0, b"\x00" * AUDIO_BYTES + b"\x00"), Dial(0, "12a"), Dial(0, ""),
                                 SetGain(0, 13, 0), Dtmf(0, "E"), Ping(1, port=16),
                                 Status((PortStatus(0, 40000, 0),)), BAudio(0, 0, b"\x00" * AUDIO_BYTES),
                                 BAudio(0, 1, b"")])
def test_encoder_refuses_what_the_protocol_cannot_carry(msg: object) -> None:
    with pytest.raises(PayloadError):
        encode_frame(msg, 0)  # type: ignore[arg-type]


def test_caps_flags_say_how_many_calls_a_bri_port_takes() -> None:
    """CAPS bit 2 (BAUDIO, both B channels) makes a BRI port take two calls; nothing else does."""
    assert PortCaps(PortKind.BRI, 0x05).b_channels == 2
    assert PortCaps(PortKind.BRI, 0x01).b_channels == 1  # an older board: one call on AUDIO
    assert PortCaps(PortKind.FXO, 0x05).b_channels == 1
    # hw/PROTOCOL.md's BRI example: one BRI port, flags 05 (audio on the link, both B channels as BAUDIO).
    body = frame_body(Caps(1, 1, 0, (PortCaps(PortKind.BRI, 0x05),), "VB0002"), 0)
    assert body[:-2] == bytes.fromhex("0200ff01010001030506") + b"VB0002"
