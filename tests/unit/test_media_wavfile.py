"""WAV player and recorder."""

import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from appliance.media.wavfile import WavError, WavPlayer, WavRecorder, repair_wav


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


def _unclosed(path, frames, channels):
    """A recording whose writer never closed (max-size header), flushed to the OS."""
    rec = WavRecorder(path, channels=channels)
    for f in frames:
        rec.write(f)
    rec._f.flush()
    return rec


@pytest.mark.parametrize("channels", [1, 2])
def test_repair_wav_fixes_sizes_and_cuts_a_partial_frame(tmp_path, channels):
    p = tmp_path / "u.wav"
    frames = [np.full((320, channels), i, np.int16) * np.array([1, -1][:channels], np.int16)
              for i in range(1, 11)]
    rec = _unclosed(p, [f[:, 0] if channels == 1 else f for f in frames], channels)
    with open(p, "ab") as f:
        f.write(b"\x01\x02\x03"[:2 * channels - 1])  # a sample frame never finished
    assert repair_wav(p) is True
    assert os.path.getsize(p) == 44 + 3200 * 2 * channels
    with wave.open(str(p)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (channels, 16000, 3200)
        data = np.frombuffer(w.readframes(10 ** 6), np.int16).reshape(-1, channels)
    assert np.array_equal(data[::320, 0], np.arange(1, 11))
    if channels == 2:
        assert np.array_equal(data[:, 1], -data[:, 0])
    assert repair_wav(p) is False  # already right: untouched
    rec._f.close()


def test_repair_wav_leaves_a_closed_file_alone_and_rejects_non_wav(tmp_path):
    p = tmp_path / "c.wav"
    rec = WavRecorder(p, channels=2)
    rec.write(np.zeros((320, 2), np.int16))
    rec.close()
    before = p.read_bytes()
    assert repair_wav(p) is False and p.read_bytes() == before
    junk = tmp_path / "j.wav"
    junk.write_bytes(b"not a wave file at all, just text" * 3)
    with pytest.raises(WavError):
        repair_wav(junk)
    with pytest.raises(WavError):
        WavRecorder(tmp_path / "x.wav", channels=3)
    rec2 = WavRecorder(tmp_path / "y.wav", channels=2)
    with pytest.raises(WavError):
        rec2.write(np.zeros(320, np.int16))  # mono frame to a stereo file
    rec2.close()


_WRITER = """
import sys, time
import numpy as np
from appliance.media.wavfile import WavRecorder
rec = WavRecorder(sys.argv[1], channels=2)
for i in range(150):  # 3 s of 20 ms frames: past the 2 s flush
    rec.write(np.stack([np.full(320, i, np.int16), np.full(320, -i, np.int16)], axis=1))
print("written", flush=True)
time.sleep(60)
"""


def test_recording_of_a_killed_process_is_repaired(tmp_path):
    p = tmp_path / "killed.wav"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(p)], stdout=subprocess.PIPE,
                            cwd=str(Path(__file__).resolve().parents[2]))
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"written\n"
    finally:
        proc.kill()  # SIGKILL: no close(), no flush of the writer's buffer
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    size = os.path.getsize(p)
    assert size >= 44 + 100 * 320 * 4  # at least the 2 s flushed
    assert repair_wav(p) is True
    with wave.open(str(p)) as w:
        n = w.getnframes()
        assert w.getnchannels() == 2 and n == (size - 44) // 4 and n >= 100 * 320
        data = np.frombuffer(w.readframes(n), np.int16).reshape(-1, 2)
    k = np.arange(n) // 320
    assert np.array_equal(data[:, 0], k) and np.array_equal(data[:, 1], -k)
