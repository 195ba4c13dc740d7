import math

import numpy as np
import pytest
import tensorflow as tf

from prism_tf import MemoryBank, PrismSelector
from prism_tf.selector import NO_GUARDS
from tests.numpy_reference import RingBuffer, SmoothTopR, clean_probability, rank_mixture


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
    _run_stream(PrismSelector(noise_rate, window_size=window_size, **NO_GUARDS),
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
    _run_stream(PrismSelector(0.5, window_size=3, **NO_GUARDS), SmoothTopR(0.5, 3), stream)


def test_first_step_with_all_ones_drops_exactly_r():
    keep, threshold = PrismSelector(0.25, **NO_GUARDS).select(np.ones(8, "float32"))
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
    weights, logs = tf.function(selector.__call__, jit_compile=True)(
        z, tf.constant([0, 0, 1, 1]), bank)
    assert weights.numpy().tolist() == [1.0, 0.0, 0.0, 1.0]
    p = selector.clean_probability(z, [0, 0, 1, 1], bank).numpy()
    # Both clean samples sit at p = e / (e + 1); the threshold is the
    # highest dropped probability, that of the two wrong labels.
    assert p[0] == pytest.approx(math.e / (math.e + 1), rel=1e-5)
    assert float(logs["threshold"]) == pytest.approx(1 / (math.e + 1), rel=1e-5)


def test_window_is_checkpointed(tmp_path):
    selector = PrismSelector(0.5, window_size=4, **NO_GUARDS)
    selector.select(np.array([0.1, 0.2, 0.3, 0.4], "float32"))
    path = tf.train.Checkpoint(selector=selector).save(str(tmp_path / "ckpt"))
    restored = PrismSelector(0.5, window_size=4)
    tf.train.Checkpoint(selector=restored).restore(path).assert_consumed()
    assert restored.window.numpy().tolist() == selector.window.numpy().tolist()
    assert int(restored.window_count.numpy()) == 1


@pytest.mark.parametrize("kwargs,match", [
    (dict(noise_rate=1.0), r"noise_rate must be a rate in \[0, 1\)"),
    (dict(noise_rate="1/2"), r"noise_rate must be a rate in \[0, 1\) .* or 'auto'; got '1/2'"),
    (dict(noise_rate=0.5, window_size=0), "window_size must be a positive integer"),
    (dict(noise_rate=0.5, temperature=0.0), "temperature must be a number > 0"),
    (dict(noise_rate=0.5, scoring="rows"), r"scoring must be one of the names .*\['centers'"),
    (dict(noise_rate=0.5, max_noise_estimate=0.0), r"max_noise_estimate must be a share"),
    (dict(noise_rate="auto", min_separability=0.3), r"min_separability must be a value"),
])
def test_bad_arguments_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PrismSelector(**kwargs)


def test_config_round_trip():
    selector = PrismSelector(0.3, window_size=7, temperature=0.1, scoring="full")
    clone = PrismSelector.from_config(selector.get_config())
    assert (clone.noise_rate, clone.window_size, clone.temperature, clone.scoring) == (
        0.3, 7, 0.1, "full")


def _labelled_cluster_batches(rng, classes, noise_rate, batches=12, batch=64, dim=16,
                              spread=0.3):
    """Batches around `classes` orthogonal centres, a share of labels replaced
    by another class: [(z, labels, is_noisy)]."""
    centres = np.eye(dim, dtype="float32")[:classes]
    out = []
    for _ in range(batches):
        truth = rng.integers(0, classes, batch)
        z = centres[truth] + spread * rng.normal(size=(batch, dim)).astype("float32")
        z /= np.linalg.norm(z, axis=1, keepdims=True)
        is_noisy = rng.random(batch) < noise_rate
        labels = np.where(is_noisy, (truth + rng.integers(1, classes, batch)) % classes, truth)
        out.append((z, labels.astype("int32"), is_noisy))
    return out


def test_label_rank_is_the_share_of_other_classes_in_memory_ranked_above():
    rng = np.random.default_rng(3)
    bank, buffer = MemoryBank(64, 5, 6), RingBuffer(64, 5, 6)
    memory, memory_labels = _normalized(rng, 40, 5), rng.integers(0, 5, 40)  # class 5 absent
    bank.enqueue(memory, memory_labels)
    buffer.enqueue(memory, memory_labels)
    z, labels = _normalized(rng, 30, 5), rng.integers(0, 6, 30)
    _, rank = PrismSelector(0.5).scores(z, labels, bank)
    present = np.array([(buffer.labels == k).any() for k in range(6)])
    centres = np.stack([buffer.embeddings[buffer.labels == k].mean(0) if present[k]
                        else np.zeros(5) for k in range(6)])
    logits = z @ centres.T
    for i, label in enumerate(labels):
        if not present[label]:
            assert float(rank[i]) == -1.0
            continue
        others = present & (np.arange(6) != label)
        expected = (logits[i, others] > logits[i, label]).sum() / others.sum()
        assert float(rank[i]) == pytest.approx(expected, abs=1e-6), i


@pytest.mark.parametrize("classes,noise_rate", [(10, 0.0), (10, 0.2), (10, 0.5), (50, 0.0),
                                                (50, 0.4)])
def test_the_noise_estimate_finds_the_share_of_wrong_labels(classes, noise_rate):
    rng = np.random.default_rng(4)
    dim = 16 if classes <= 16 else 64
    bank = MemoryBank(2048, dim, classes)
    selector = PrismSelector("auto", window_size=10)
    # The same noise norm (about 1.2) in either dimension.
    for z, labels, _ in _labelled_cluster_batches(rng, classes, noise_rate, dim=dim,
                                                  spread=1.2 / np.sqrt(dim)):
        _, rank = selector.scores(z, labels, bank)
        selector.observe(rank, bank)
        bank.enqueue(z, labels)
    # An upper bound (clean samples the memory misranks add to it), within 0.1.
    assert noise_rate - 0.02 <= float(selector.noise_estimate()) <= noise_rate + 0.1


def test_auto_keeps_all_during_warm_up_then_drops_the_wrong_labels():
    rng = np.random.default_rng(5)
    bank = MemoryBank(2048, 16, 10)
    selector = PrismSelector("auto", window_size=4)
    kept, purity = [], []
    for z, labels, is_noisy in _labelled_cluster_batches(rng, 10, 0.3, batches=10):
        weights, _ = selector(z, labels, bank)
        keep = weights.numpy() > 0
        kept.append(keep.mean())
        purity.append(1 - is_noisy[keep].mean())
        bank.enqueue(z, labels)
    # An empty memory scores nothing; the 4th scored batch fills the window and selects.
    assert kept[:4] == [1.0] * 4 and kept[4] < 1.0
    assert 0.55 < np.mean(kept[4:]) < 0.8 and np.mean(purity[4:]) > 0.9


def test_the_guard_keeps_every_sample_while_the_memory_ranks_labels_at_random():
    rng = np.random.default_rng(6)
    bank = MemoryBank(512, 16, 10)
    guarded, unguarded = PrismSelector(0.5, 4), PrismSelector(0.5, 4, **NO_GUARDS)
    for _ in range(8):   # labels unrelated to the embeddings
        z, labels = _normalized(rng, 64, 16), rng.integers(0, 10, 64).astype("int32")
        keep_guarded, _ = guarded(z, labels, bank)
        keep_unguarded, _ = unguarded(z, labels, bank)
        bank.enqueue(z, labels)
    assert float(guarded.noise_estimate()) > 0.85
    assert keep_guarded.numpy().all() and int(guarded.window_count.numpy()) == 0
    assert keep_unguarded.numpy().mean() <= 0.5


def test_auto_and_the_guard_are_saved():
    config = PrismSelector("auto", max_noise_estimate=0.6).get_config()
    assert (config["noise_rate"], config["max_noise_estimate"]) == ("auto", 0.6)
    assert PrismSelector.from_config(config).noise_rate == "auto"


def _vmf_reference(z, labels, rows, row_labels, classes):
    """p_clean under vMF-Sim, with scipy's Bessel function (float64)."""
    special = pytest.importorskip("scipy.special")
    dim = z.shape[1]
    logits = np.full((len(z), classes), -np.inf)
    for k in range(classes):
        members = rows[row_labels == k]
        if len(members):
            total = members.sum(0)
            rbar = min(np.linalg.norm(total) / len(members), 1 - 1e-5)
            kappa = rbar * (dim - rbar ** 2) / (1 - rbar ** 2)
            order = dim / 2 - 1
            log_c = (order * np.log(kappa) - dim / 2 * np.log(2 * np.pi)
                     - (np.log(special.ive(order, kappa)) + kappa))
            logits[:, k] = log_c + kappa * z @ total / np.linalg.norm(total)
    own = logits[np.arange(len(z)), labels]
    return np.exp(own - np.logaddexp.reduce(logits, axis=1))


@pytest.mark.parametrize("dim, spread", [(64, 3.0), (512, 0.1)])
def test_vmf_scoring_matches_scipy(dim, spread):
    # D = 512 with tight classes: concentrations in the hundreds, where
    # I_nu(kappa) itself overflows float64.
    rng = np.random.default_rng(2)
    classes, size = 5, 60
    centres = _normalized(rng, classes, dim)
    row_labels = np.arange(size) % classes
    rows = centres[row_labels] + spread * rng.normal(size=(size, dim)) / np.sqrt(dim)
    rows = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype("float32")
    bank = MemoryBank(size, dim, classes + 1)   # class 5 stays empty
    bank.enqueue(rows, row_labels)
    z = rows[:10] + 0.3 * _normalized(rng, 10, dim)
    z = (z / np.linalg.norm(z, axis=1, keepdims=True)).astype("float32")
    labels = rng.integers(0, classes, 10)
    selector = PrismSelector(0.3, scoring="vmf")
    p = selector.clean_probability(z, labels, bank).numpy()
    expected = _vmf_reference(z.astype(float), labels, rows.astype(float), row_labels, classes)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p, expected, rtol=1e-3, atol=1e-6)
    rbar = np.linalg.norm(rows[row_labels == 0].sum(0)) / (size // classes)
    kappa = rbar * (dim - rbar ** 2) / (1 - rbar ** 2)
    assert kappa > 300 or dim < 512, kappa
    # The same numbers compiled with XLA.
    compiled = tf.function(lambda z, y: selector.clean_probability(z, y, bank), jit_compile=True)
    np.testing.assert_allclose(compiled(z, labels).numpy(), p, rtol=1e-5)


@pytest.mark.parametrize("classes,noise_rate,spread", [(12, 0.0, 0.5), (40, 0.3, 1.0),
                                                       (40, 0.5, 2.0), (9, 0.2, 0.8)])
def test_rank_mixture_matches_numpy(classes, noise_rate, spread):
    rng = np.random.default_rng(11)
    bank = MemoryBank(1024, 64, classes)
    selector = PrismSelector("auto", window_size=5)
    scored = []
    for z, labels, _ in _labelled_cluster_batches(rng, classes, noise_rate, batches=9,
                                                  dim=64, spread=spread / 8):
        _, rank = selector.scores(z, labels, bank)
        present = int((bank.class_counts.numpy() > 0).sum())
        if present:
            scored.append((rank.numpy(), present - 1))
        selector.observe(rank, bank)
        bank.enqueue(z, labels)
    estimate, posterior, separability = rank_mixture(scored[-5:])
    got = selector._rank_mixture()
    assert float(got[0]) == pytest.approx(estimate, abs=1e-5)
    np.testing.assert_allclose(got[1].numpy(), posterior, atol=1e-5)
    assert float(got[2]) == pytest.approx(separability, abs=1e-5)


def _selector_run(rng, classes, noise_rate, spread, batches=24, told="auto", **selector_args):
    """(kept share, kept share of the clean samples, noise estimate,
    separability) of the selector told `told` (auto by default) over the
    second half of the batches, under XLA; `spread`: the norm of each
    sample's offset from its class centre."""
    bank = MemoryBank(2048, 64, classes)
    selector = PrismSelector(told, window_size=10, **selector_args)
    select = tf.function(selector.__call__, jit_compile=True)
    kept, clean_kept = [], []
    for z, labels, is_noisy in _labelled_cluster_batches(rng, classes, noise_rate,
                                                         batches=batches, dim=64,
                                                         spread=spread / 8):
        weights, logs = select(z, labels, bank)
        keep = weights.numpy() > 0
        kept.append(keep.mean())
        clean_kept.append(keep[~is_noisy].mean())
        bank.enqueue(z, labels)
    half = batches // 2
    return (np.mean(kept[half:]), np.mean(clean_kept[half:]), float(logs["noise_estimate"]),
            float(logs["separability"]))


def test_auto_keeps_the_clean_samples_a_weak_memory_misranks():
    # Clusters wide enough that many clean labels rank below others.
    kept, clean_kept, estimate, separability = _selector_run(np.random.default_rng(12), 20, 0.0,
                                                         spread=4.0)
    assert 0.7 < separability < 0.95
    assert kept >= 0.95 and estimate < 0.1


def test_auto_keeps_everything_while_the_ranks_barely_separate():
    kept, _, _, separability = _selector_run(np.random.default_rng(13), 20, 0.5, spread=5.0)
    assert separability < PrismSelector("auto").min_separability and kept == 1.0


@pytest.mark.parametrize("spread, selects", [(5.0, False), (0.6, True)])
def test_a_told_rate_selects_only_where_the_clean_labels_rank_well(spread, selects):
    # 50% noise: the raw mean rank says at most 3/4 here even for a perfect
    # memory; the guard reads the clean labels' own ranks.
    kept, clean_kept, _, separability = _selector_run(np.random.default_rng(15), 20, 0.5,
                                                  spread=spread, told=0.5)
    assert (separability >= PrismSelector(0.5).min_separability) == selects
    if selects:
        assert 0.4 < kept < 0.6 and clean_kept > 0.9
    else:
        assert kept == 1.0


@pytest.mark.parametrize("capped", [True, False])
def test_a_told_rate_drops_at_most_the_estimated_share(capped):
    kept, _, estimate, _ = _selector_run(np.random.default_rng(16), 20, 0.0, spread=0.6,
                                     told=0.25, rate_at_most_estimate=capped)
    assert estimate < 0.05
    assert kept == (1.0 if capped else pytest.approx(0.75, abs=0.05))


def test_auto_drops_wrong_labels_a_good_memory_ranks_low():
    kept, clean_kept, estimate, separability = _selector_run(np.random.default_rng(14), 20, 0.4,
                                                         spread=0.6)
    assert abs(estimate - 0.4) < 0.1 and separability > PrismSelector("auto").min_separability
    assert 0.5 < kept < 0.7 and clean_kept > 0.95
