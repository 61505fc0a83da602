"""WAV player and recorder."""

import os
import wave

import numpy as np
import pytest

from appliance.media.wavfile import WavError, WavPlayer, WavRecorder


def _write(path, samples, rate):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, np.int16).tobytes())


def test_player_non_loop_pads_and_finishes(tmp_path):
    p = tmp_path / "a.wav"
    _write(p, np.arange(500), 16000)
    pl = WavPlayer(p, loop=False)
    f1, f2 = pl.next_frame(), pl.next_frame()
    assert np.array_equal(f1, np.arange(320)) and np.array_equal(f2[:180], np.arange(320, 500))
    assert not f2[180:].any() and pl.next_frame() is None and pl.finished


def test_player_loops(tmp_path):
    p = tmp_path / "a.wav"
    _write(p, np.arange(100), 16000)
    frame = WavPlayer(p, loop=True).next_frame()
    assert np.array_equal(frame, np.arange(320) % 100)


def test_player_upsamples_8k(tmp_path):
    p = tmp_path / "a.wav"
    _write(p, 8000 * np.sin(2 * np.pi * 500 * np.arange(800) / 8000), 8000)
    frames = [WavPlayer(p, loop=False).next_frame() for _ in range(1)]
    assert len(frames[0]) == 320
    spectrum = np.abs(np.fft.rfft(frames[0].astype(float)))
    assert np.argmax(spectrum) * 50 == 500


def test_player_rejects_stereo(tmp_path):
    p = tmp_path / "s.wav"
    with wave.open(str(p), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(400))
    with pytest.raises(WavError):
        WavPlayer(p)


def test_recorder_closes_with_true_header(tmp_path):
    p = tmp_path / "r.wav"
    rec = WavRecorder(p)
    for i in range(10):
        rec.write(np.full(320, i, np.int16))
    rec.close()
    with wave.open(str(p)) as w:
        assert (w.getframerate(), w.getnframes()) == (16000, 3200)
        data = np.frombuffer(w.readframes(3200), np.int16)
    assert np.array_equal(data[::320], np.arange(10))


def test_killed_recorder_leaves_readable_file(tmp_path):
    p = tmp_path / "k.wav"
    rec = WavRecorder(p)
    for _i in range(150):  # 3 s: past one periodic flush
        rec.write(np.full(320, 7, np.int16))
    # simulate the process dying: the OS keeps what was flushed, the header is never fixed
    os.close(os.dup(rec._f.fileno()))
    with wave.open(str(p)) as w:
        data = np.frombuffer(w.readframes(10 ** 6), np.int16)
    assert len(data) >= 2 * 16000 and (data == 7).all()
    rec.close()
