"""N-1 mixing over many bridges at once."""

import numpy as np

from appliance.media.mixer import bridge_sums, mix_minus


def test_n_minus_1_for_several_bridges_at_once():
    rng = np.random.default_rng(0)
    n = 23
    frames = rng.integers(-5000, 5000, (n, 320)).astype(np.int16)
    bridge_of = np.array([0, 1, 2, 0, 1, 2, 3, 3, 3, 3, -1, 4, 0, 5, 5, 1, -1, 2, 6, 6, 6, 0, 7])
    out, sums = mix_minus(frames, bridge_of, 8)
    for i in range(n):
        b = bridge_of[i]
        if b < 0:
            assert not out[i].any()
            continue
        others = [j for j in range(n) if bridge_of[j] == b and j != i]
        expected = np.clip(sum((frames[j].astype(np.int32) for j in others),
                               np.zeros(320, np.int32)), -32768, 32767)
        assert np.array_equal(out[i], expected), i
    assert not out[11].any()  # alone in bridge 4: hears nothing
    assert np.array_equal(sums[7], frames[22])


def test_clipping_and_int32_wrap_safety():
    frames = np.full((40, 320), 32767, dtype=np.int16)
    bridge_of = np.zeros(40, dtype=np.int64)
    out, sums = mix_minus(frames, bridge_of, 1)
    assert (out == 32767).all()
    assert (sums[0] == 40 * 32767).all()


def test_unused_bridge_index_sums_to_zero():
    frames = np.ones((3, 4), dtype=np.int16)
    sums = bridge_sums(frames, np.array([2, 2, -1]), 4)
    assert sums.tolist() == [[0] * 4, [0] * 4, [2] * 4, [0] * 4]
