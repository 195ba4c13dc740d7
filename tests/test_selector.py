import math

import numpy as np
import pytest
import tensorflow as tf

from prism_tf import MemoryBank, PrismSelector
from tests.numpy_reference import RingBuffer, SmoothTopR, clean_probability


def _normalized(rng, n, dim):
    x = rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype("float32")


@pytest.mark.parametrize("scoring", ["centers", "full"])
def test_clean_probability_matches_numpy_on_random_streams(scoring):
    rng = np.random.default_rng(1)
    size, dim, classes = 40, 6, 7
    bank, buffer = MemoryBank(size, dim, classes), RingBuffer(size, dim, classes)
    selector = PrismSelector(0.3, temperature=0.5, scoring=scoring)
    for _ in range(12):
        z = _normalized(rng, 16, dim)
        labels = rng.integers(0, classes, 16)
        expected = clean_probability(z, labels, buffer, temperature=0.5)
        np.testing.assert_allclose(
            selector.clean_probability(z, labels, bank).numpy(), expected, atol=1e-5)
        mask = rng.random(16) < 0.5
        bank.enqueue(z, labels, mask)
        buffer.enqueue(z, labels, mask)


def test_class_missing_from_memory_gets_probability_one():
    bank = MemoryBank(8, 2, 3)
    selector = PrismSelector(0.5)
    z = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    assert selector.clean_probability(z, [0, 1], bank).numpy().tolist() == [1.0, 1.0]
    bank.enqueue(z[:1], [0])
    p = selector.clean_probability(z, [0, 2], bank).numpy()
    assert p[0] == pytest.approx(1.0) and p[1] == 1.0  # class 0 alone in memory


def _run_stream(selector, reference, stream):
    select = tf.function(selector.select)
    for p in stream:
        p = np.asarray(p, "float32")
        keep, threshold = select(p)
        want_keep, want_threshold = reference.select(p)
        np.testing.assert_array_equal(keep.numpy(), want_keep)
        assert float(threshold) == pytest.approx(float(want_threshold), abs=1e-6)
        count = int(selector.window_count.numpy())
        assert count == len(reference.window)
        if count:
            np.testing.assert_allclose(
                selector.window.numpy()[-count:], reference.window, atol=1e-7)


@pytest.mark.parametrize("noise_rate,window_size", [(0.5, 5), (0.2, 30), (0.75, 1)])
def test_select_matches_numpy_on_random_streams(noise_rate, window_size):
    rng = np.random.default_rng(2)
    stream = [rng.beta(2, 2, size=int(rng.integers(4, 40))) for _ in range(60)]
    _run_stream(PrismSelector(noise_rate, window_size=window_size),
                SmoothTopR(noise_rate, window_size), stream)


def test_select_edge_cases_match_numpy():
    stream = [
        np.ones(8),                          # empty memory: all 1, ties -> top-R by rank
        [0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.6, 0.4],
        [0.05, 0.01, 0.02, 0.03, 0.04, 0.05, 0.01, 0.02],  # nothing passes -> cut
        [0.5, np.inf, 0.6, 0.7],            # q finite
        [np.nan, 0.2, 0.3, 0.4],            # NaN ranks lowest; q = 0.2
        [1.0, 1.0, 1.0, 0.9],               # q = 1 is not appended
        [0.3, 0.9, 0.6],                    # r = floor(1.5) = 1
        [0.4],                              # r = 0: keep all, window untouched
    ]
    _run_stream(PrismSelector(0.5, window_size=3), SmoothTopR(0.5, 3), stream)


def test_first_step_with_all_ones_drops_exactly_r():
    keep, threshold = PrismSelector(0.25).select(np.ones(8, "float32"))
    assert keep.numpy().sum() == 6 and float(threshold) == 1.0


def test_zero_noise_rate_keeps_everything():
    selector = PrismSelector(0.0)
    keep, threshold = selector.select(np.array([0.1, 0.9], "float32"))
    assert keep.numpy().all() and float(threshold) == 0.0
    assert int(selector.window_count.numpy()) == 0


def test_call_scores_and_selects_under_xla():
    bank = MemoryBank(16, 2, 2)
    bank.enqueue(np.array([[1, 0], [1, 0], [0, 1], [0, 1]], "float32"), [0, 0, 1, 1])
    selector = PrismSelector(0.5, window_size=4)
    z = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], "float32")
    keep, p = tf.function(selector.__call__, jit_compile=True)(z, tf.constant([0, 0, 1, 1]), bank)
    assert keep.numpy().tolist() == [True, False, False, True]
    assert p.numpy()[0] == pytest.approx(math.e / (math.e + 1), rel=1e-5)


def test_window_is_checkpointed(tmp_path):
    selector = PrismSelector(0.5, window_size=4)
    selector.select(np.array([0.1, 0.2, 0.3, 0.4], "float32"))
    path = tf.train.Checkpoint(selector=selector).save(str(tmp_path / "ckpt"))
    restored = PrismSelector(0.5, window_size=4)
    tf.train.Checkpoint(selector=restored).restore(path).assert_consumed()
    assert restored.window.numpy().tolist() == selector.window.numpy().tolist()
    assert int(restored.window_count.numpy()) == 1


@pytest.mark.parametrize("kwargs,match", [
    (dict(noise_rate=1.0), "noise_rate must be in"),
    (dict(noise_rate=0.5, window_size=0), "window_size must be"),
    (dict(noise_rate=0.5, temperature=0.0), "temperature must be"),
    (dict(noise_rate=0.5, scoring="rows"), "scoring must be one of"),
])
def test_bad_arguments_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PrismSelector(**kwargs)


def test_config_round_trip():
    selector = PrismSelector(0.3, window_size=7, temperature=0.1, scoring="full")
    clone = PrismSelector.from_config(selector.get_config())
    assert (clone.noise_rate, clone.window_size, clone.temperature, clone.scoring) == (
        0.3, 7, 0.1, "full")
