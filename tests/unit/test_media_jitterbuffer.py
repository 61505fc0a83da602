"""Adaptive jitter buffer: order, loss, duplicates, lateness, depth adaptation."""

from appliance.media.jitterbuffer import JitterBuffer, PlayoutState


def _payload(i: int) -> bytes:
    return i.to_bytes(2, "big") * 80


def _drain(jb: JitterBuffer, n: int) -> list[int | None]:
    out = []
    for _ in range(n):
        p = jb.get()
        out.append(None if p is None else int.from_bytes(p[:2], "big"))
    return out


def _simulate(jb: JitterBuffer, arrivals: list[tuple[int, float]], ticks: int,
              tick0: float = 0.01) -> list[int | None]:
    """Packets (seq, arrival s) interleaved with a 20 ms playout clock; frames played per tick."""
    pending = sorted(arrivals, key=lambda a: a[1])
    out: list[int | None] = []
    for t in range(ticks):
        now = tick0 + 0.02 * t
        while pending and pending[0][1] <= now:
            seq, at = pending.pop(0)
            jb.put(seq, 160 * seq, _payload(seq), at)
        p = jb.get()
        out.append(None if p is None else int.from_bytes(p[:2], "big"))
    return out


def test_reorders_within_depth():
    jb = JitterBuffer()
    jb.target = 3  # as if jitter had been measured
    arrivals = [(0, 0.0), (1, 0.02), (3, 0.04), (2, 0.045), (4, 0.08), (6, 0.10), (5, 0.101),
                (7, 0.14)]
    played = [p for p in _simulate(jb, arrivals, 12) if p is not None]
    assert played == sorted(played) and set(played) >= {2, 3, 4, 5, 6}


def test_duplicates_and_late_packets_dropped():
    jb = JitterBuffer()
    assert jb.put(1, 0, _payload(1), 0.0)
    assert not jb.put(1, 0, _payload(1), 0.001)
    assert jb.duplicates == 1
    jb.put(2, 160, _payload(2), 0.02)
    assert _drain(jb, 2) == [1, 2]
    assert not jb.put(1, 0, _payload(1), 0.05)  # already played
    assert jb.late == 1


def test_loss_gives_none_and_counts():
    jb = JitterBuffer()
    played = _simulate(jb, [(i, 0.02 * i) for i in (0, 1, 2, 4, 5, 6)], 7)
    assert played[:7] == [0, 1, 2, None, 4, 5, 6]
    assert jb.lost_frames == 1
    assert jb.stats.lost == 1


def test_sequence_wraparound():
    jb = JitterBuffer()
    seqs = [65534, 65535, 0, 1]
    out = []
    for k, s in enumerate(seqs):
        jb.put(s, 160 * k, _payload(k), 0.02 * k)
        out += _drain(jb, 1)
    assert out == [0, 1, 2, 3]
    assert jb.stats.extended_max == 65536 + 1


def test_depth_grows_with_jitter_and_shrinks_back():
    jb = JitterBuffer()
    # arrivals jittered by +-30 ms around a 20 ms clock
    for i in range(200):
        jitter = 0.03 if i % 2 else 0.0
        jb.put(i, 160 * i, _payload(i), 0.02 * i + jitter)
    grown = jb.target
    assert grown >= 4 and jb.jitter_ms > 15
    jb2 = JitterBuffer()
    for i in range(200):
        jb2.put(i, 160 * i, _payload(i), 0.02 * i)
    assert jb2.target == 1
    # after the jitter stops, the estimate decays (A.8 gain 1/16) and the target follows
    for i in range(200, 400):
        jb.put(i, 160 * i, _payload(i), 0.02 * i + 0.03)
    assert jb.target < grown


def test_steady_stream_plays_without_loss_and_bounded_delay():
    jb = JitterBuffer()
    played = []
    for i in range(100):
        jb.put(i, 160 * i, _payload(i), 0.02 * i)
        played.append(jb.get())
    assert all(p is not None for p in played)
    assert jb.depth <= jb.target + 2 and jb.state is PlayoutState.PLAYING


def test_excess_depth_is_trimmed():
    jb = JitterBuffer()
    for i in range(8):  # a burst of 8 packets at once
        jb.put(i, 160 * i, _payload(i), 0.0)
    first = _drain(jb, 1)
    assert first[0] is not None and first[0] > 0  # oldest dropped to cut delay
    assert jb.dropped >= 1


def test_restart_of_sequence_space_resyncs():
    jb = JitterBuffer()
    assert _simulate(jb, [(i, 0.02 * i) for i in range(5)], 5) == [0, 1, 2, 3, 4]
    out = []
    for i in range(5):
        jb.put(30000 + i, 160 * i, _payload(50 + i), 1 + 0.02 * i)
        out += _drain(jb, 1)
    assert out == [50, 51, 52, 53, 54]
