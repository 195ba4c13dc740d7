import numpy as np
import pytest

from prism_tf.data import inject_noise, inject_small_cluster_noise, inject_symmetric_noise


def _labels(classes=20, per_class=30, seed=0):
    counts = np.random.default_rng(seed).integers(per_class // 2, per_class * 2, classes)
    return np.repeat(np.arange(classes), counts)


@pytest.mark.parametrize("rate", [0.1, 0.2, 0.5])
def test_symmetric_rate_is_exact_and_labels_move_to_other_classes(rate):
    labels = _labels()
    noisy = inject_symmetric_noise(labels, rate, seed=3)
    assert abs(noisy.is_noisy.sum() - rate * labels.size) <= 1
    assert noisy.report.realized_rate == pytest.approx(noisy.is_noisy.mean())
    assert (noisy.labels[noisy.is_noisy] != labels[noisy.is_noisy]).all()
    assert (noisy.labels[~noisy.is_noisy] == labels[~noisy.is_noisy]).all()
    assert noisy.labels.min() >= 0 and noisy.labels.max() < 20
    # Uniform over the other classes: every class receives some wrong labels.
    assert np.unique(noisy.labels[noisy.is_noisy]).size == 20


@pytest.mark.parametrize("inject", [
    lambda y, seed: inject_symmetric_noise(y, 0.5, seed),
    lambda y, seed: inject_small_cluster_noise(y, 0.5, seed),
])
def test_same_seed_same_labels_other_seed_other_labels(inject):
    labels = _labels()
    a, b, c = inject(labels, 1), inject(labels, 1), inject(labels, 2)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.is_noisy, b.is_noisy)
    assert (a.labels != c.labels).any()


@pytest.mark.parametrize("rate", [0.25, 0.5])
def test_small_cluster_turns_whole_classes_into_small_groups(rate):
    labels = _labels(classes=40)
    noisy = inject_small_cluster_noise(labels, rate, seed=5)
    sources = np.unique(labels[noisy.is_noisy])
    retained = np.setdiff1d(np.unique(labels), sources)
    # Whole classes: a source class is noisy in every sample.
    assert all(noisy.is_noisy[labels == s].all() for s in sources)
    largest = np.bincount(labels).max()
    assert abs(noisy.is_noisy.sum() - rate * labels.size) <= largest / 2 + 1
    # Retained classes re-indexed 0..C'-1 in order; noisy groups land in them.
    assert noisy.report.num_classes == retained.size
    clean = ~noisy.is_noisy
    np.testing.assert_array_equal(noisy.labels[clean], np.searchsorted(retained, labels[clean]))
    assert noisy.labels.min() >= 0 and noisy.labels.max() < retained.size
    # Groups of 1-5: a source class of n images lands in at least n/5 groups,
    # so it is spread over several retained classes.
    for source in sources:
        assert np.unique(noisy.labels[labels == source]).size >= min(3, (labels == source).sum() // 5)


def test_no_noise_keeps_labels():
    labels = _labels()
    noisy = inject_noise(labels, "none", 0.0, seed=0)
    np.testing.assert_array_equal(noisy.labels, labels)
    assert not noisy.is_noisy.any() and noisy.report.realized_rate == 0.0


@pytest.mark.parametrize("labels,kind,rate,match", [
    (np.array([0, 1, -2]), "symmetric", 0.2, "labels must be >= 0; got -2"),
    (np.array([0.5, 1.0]), "symmetric", 0.2, "1-D integer array"),
    (np.array([0, 1]), "symmetric", 1.0, r"rate must be in \[0, 1\); got 1.0"),
    (np.array([0, 1]), "small_cluster", -0.1, r"rate must be in \[0, 1\)"),
    (np.array([0, 1]), "pairflip", 0.2, "noise kind must be one of"),
    (np.array([0, 1]), "none", 0.2, "takes rate 0"),
])
def test_bad_noise_arguments_are_explained(labels, kind, rate, match):
    with pytest.raises(ValueError, match=match):
        inject_noise(labels, kind, rate, seed=0)
