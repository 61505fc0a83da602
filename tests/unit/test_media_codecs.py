"""G.711 golden vectors against the stdlib reference, G.722 round trip, resampling."""

import warnings

import numpy as np
import pytest

from appliance.media import g711, resample
from appliance.media.codecs import CodecError, codec_by_name

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # independent C implementation of the same G.711 reference code (3.11)


def test_ulaw_decode_all_256_codes_match_reference():
    codes = bytes(range(256))
    ref = np.frombuffer(audioop.ulaw2lin(codes, 2), dtype=np.int16)
    assert np.array_equal(g711.ulaw_decode(codes), ref)


def test_alaw_decode_all_256_codes_match_reference():
    codes = bytes(range(256))
    ref = np.frombuffer(audioop.alaw2lin(codes, 2), dtype=np.int16)
    assert np.array_equal(g711.alaw_decode(codes), ref)


@pytest.mark.parametrize("enc,ref", [(g711.ulaw_encode, audioop.lin2ulaw),
                                     (g711.alaw_encode, audioop.lin2alaw)])
def test_encode_every_int16_matches_reference(enc, ref):
    x = np.arange(-32768, 32768, dtype=np.int16)
    assert enc(x).tobytes() == ref(x.tobytes(), 2)


def test_g711_golden_values():
    assert g711.ulaw_encode(np.array([0]))[0] == 0xFF
    assert g711.alaw_encode(np.array([0]))[0] == 0xD5
    assert list(g711.ulaw_decode(b"\x00\x80\xff")) == [-32124, 32124, 0]
    assert list(g711.alaw_decode(b"\xd5\x55\xaa\x2a")) == [8, -8, 32256, -32256]


@pytest.mark.parametrize("enc,dec", [(g711.ulaw_encode, g711.ulaw_decode),
                                     (g711.alaw_encode, g711.alaw_decode)])
def test_every_code_survives_decode_encode(enc, dec):
    codes = np.arange(256, dtype=np.uint8)
    back = enc(dec(codes))
    if enc is g711.ulaw_encode:  # 0x7F is mu-law "negative zero": it decodes to 0 -> 0xFF
        assert back[0x7F] == 0xFF
        codes, back = np.delete(codes, 0x7F), np.delete(back, 0x7F)
    assert np.array_equal(back, codes)


def _snr_db(ref: np.ndarray, got: np.ndarray) -> float:
    err = got.astype(float) - ref.astype(float)
    return 10 * np.log10(np.sum(ref.astype(float) ** 2) / np.sum(err ** 2))


def test_g722_round_trip_snr_1khz():
    c = codec_by_name("G722")
    assert (c.sample_rate, c.clock_rate, c.samples_per_frame, c.timestamp_step) == (16000, 8000,
                                                                                    320, 160)
    x = (8000 * np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000)).astype(np.int16)
    payloads = [c.encode(x[i:i + 320]) for i in range(0, len(x), 320)]
    assert all(len(p) == 160 for p in payloads)
    y = np.concatenate([c.decode(p) for p in payloads])
    delay = max(range(64), key=lambda d: float(np.dot(y[d:d + 4000].astype(float), x[:4000])))
    assert _snr_db(x[1000:15000], y[1000 + delay:15000 + delay]) > 30


def test_codec_registry():
    assert codec_by_name("pcmu").payload_type == 0
    assert codec_by_name("PCMA").payload_type == 8
    assert codec_by_name("G722").payload_type == 9
    assert codec_by_name("G722") is not codec_by_name("G722")  # per-leg state
    with pytest.raises(CodecError):
        codec_by_name("opus")


def _run_up(x8: np.ndarray) -> np.ndarray:
    h = np.zeros((1, resample.UP_HISTORY), np.float32)
    out = []
    for row in x8.reshape(-1, 160):
        y, h = resample.upsample2(row[None], h)
        out.append(y[0])
    return np.concatenate(out)


def _run_down(x16: np.ndarray) -> np.ndarray:
    h = np.zeros((1, resample.DOWN_HISTORY), np.float32)
    out = []
    for row in x16.reshape(-1, 320):
        y, h = resample.decimate2(row[None], h)
        out.append(y[0])
    return np.concatenate(out)


def test_resample_round_trip_keeps_a_1khz_tone_across_frame_boundaries():
    x8 = (10000 * np.sin(2 * np.pi * 1000 * np.arange(8000) / 8000)).astype(np.int16)
    y16 = _run_up(x8)
    ref16 = 10000 * np.sin(2 * np.pi * 1000 * (np.arange(16000) - 2 * resample.HALF_TAPS)
                           / 16000)
    assert _snr_db(ref16[400:], y16[400:]) > 40
    z8 = _run_down(y16)
    assert abs(np.std(z8[400:]) - np.std(x8)) < 0.02 * np.std(x8)


def test_decimation_rejects_aliases():
    x16 = (10000 * np.sin(2 * np.pi * 6000 * np.arange(16000) / 16000)).astype(np.int16)
    z8 = _run_down(x16)  # 6 kHz would alias to 2 kHz without the low-pass
    assert np.std(z8[400:]) < 0.01 * np.std(x16)


def test_batch_resampling_equals_per_leg():
    rng = np.random.default_rng(3)
    x = rng.integers(-8000, 8000, (5, 320)).astype(np.int16)
    batch, _ = resample.decimate2(x, np.zeros((5, resample.DOWN_HISTORY), np.float32))
    for i in range(5):
        single, _ = resample.decimate2(x[i:i + 1], np.zeros((1, resample.DOWN_HISTORY), np.float32))
        assert np.array_equal(batch[i], single[0])
