"""Label-noise models of PRISM.md, computed once per split as a label table.

Each function takes the clean labels of a training split and returns a
`NoisyLabels`: the labels the model will see, the ground-truth flag of every
sample, and a report of the realised rate. The pipeline gathers from these
tables by sample index, so the noise costs nothing per step.

>>> noisy = inject_symmetric_noise(np.repeat(np.arange(4), 5), rate=0.5, seed=0)
>>> int(noisy.is_noisy.sum()), noisy.report.realized_rate
(10, 0.5)
"""

import dataclasses
from typing import Dict

import numpy as np

NOISE_KINDS = ("none", "symmetric", "small_cluster")


@dataclasses.dataclass(frozen=True)
class NoiseReport:
    """What a noise model did to a split."""

    kind: str
    requested_rate: float
    realized_rate: float  # share of wrong labels: injected, or known from the source
    num_samples: int
    num_noisy: int
    num_classes: int   # classes the model sees after the noise

    def as_dict(self) -> Dict[str, object]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class NoisyLabels:
    labels: np.ndarray    # int32 [N], in [0, report.num_classes)
    is_noisy: np.ndarray  # bool [N]
    report: NoiseReport


def _check(labels: np.ndarray, rate: float, kind: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{kind} noise: labels must be a 1-D integer array; "
                         f"got {labels.dtype} of shape {labels.shape}")
    if labels.size and labels.min() < 0:
        raise ValueError(f"{kind} noise: labels must be >= 0; got {labels.min()}")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{kind} noise: rate must be in [0, 1); got {rate!r}")
    return labels


def _result(kind, rate, labels, is_noisy, num_classes) -> NoisyLabels:
    report = NoiseReport(
        kind=kind, requested_rate=float(rate),
        realized_rate=float(is_noisy.mean()) if is_noisy.size else 0.0,
        num_samples=int(is_noisy.size), num_noisy=int(is_noisy.sum()),
        num_classes=int(num_classes))
    return NoisyLabels(labels.astype(np.int32), is_noisy, report)


def no_noise(labels: np.ndarray, num_classes: int = None) -> NoisyLabels:
    """The labels as they are, all flagged clean (`ImageSplit.with_noise`
    keeps the flags a source already knows)."""
    labels = _check(labels, 0.0, "none")
    num_classes = num_classes or (int(labels.max()) + 1 if labels.size else 0)
    return _result("none", 0.0, labels, np.zeros(labels.shape, bool), num_classes)


def inject_symmetric_noise(labels: np.ndarray, rate: float, seed: int,
                           num_classes: int = None) -> NoisyLabels:
    """Gives round(rate * N) samples a label drawn uniformly from the other classes."""
    labels = _check(labels, rate, "symmetric")
    num_classes = num_classes or (int(labels.max()) + 1 if labels.size else 0)
    if rate > 0 and num_classes < 2:
        raise ValueError("symmetric noise needs at least 2 classes")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(labels.size, size=int(round(rate * labels.size)), replace=False)
    noisy_labels = labels.copy()
    noisy_labels[chosen] = (labels[chosen]
                            + rng.integers(1, num_classes, size=chosen.size)) % num_classes
    is_noisy = np.zeros(labels.shape, bool)
    is_noisy[chosen] = True
    return _result("symmetric", rate, noisy_labels, is_noisy, num_classes)


def inject_small_cluster_noise(labels: np.ndarray, rate: float, seed: int,
                               max_group_size: int = 5) -> NoisyLabels:
    """Open-set noise: whole classes are cut into small groups, each merged into
    one retained class.

    Source classes are taken in a seeded random order while that brings the
    share of their images closer to `rate`; each is shuffled and cut into
    groups of 1 to `max_group_size` images, and every group gets the label of
    one randomly drawn retained class. Retained classes are re-indexed from
    0 in their original order.
    """
    labels = _check(labels, rate, "small_cluster")
    classes, counts = np.unique(labels, return_counts=True)
    rng = np.random.default_rng(seed)
    target = rate * labels.size
    sources, covered = [], 0
    for position in rng.permutation(classes.size):
        if len(sources) == classes.size - 1:
            break  # at least one class must stay to receive the groups
        if abs(covered + counts[position] - target) >= abs(covered - target):
            continue
        sources.append(classes[position])
        covered += counts[position]
    retained = np.setdiff1d(classes, sources)
    new_index = {old: new for new, old in enumerate(retained)}
    noisy_labels = np.array([new_index.get(y, -1) for y in labels], np.int64)
    for source in sources:
        members = rng.permutation(np.flatnonzero(labels == source))
        start = 0
        while start < members.size:
            size = int(rng.integers(1, max_group_size + 1))
            noisy_labels[members[start:start + size]] = rng.integers(0, retained.size)
            start += size
    is_noisy = np.isin(labels, sources)
    return _result("small_cluster", rate, noisy_labels, is_noisy, retained.size)


def inject_noise(labels: np.ndarray, kind: str, rate: float, seed: int,
                 num_classes: int = None) -> NoisyLabels:
    """Dispatches on `kind`, one of NOISE_KINDS."""
    if kind == "none":
        if rate:
            raise ValueError(f"noise kind 'none' takes rate 0; got {rate!r}")
        return no_noise(labels, num_classes)
    if kind == "symmetric":
        return inject_symmetric_noise(labels, rate, seed, num_classes)
    if kind == "small_cluster":
        return inject_small_cluster_noise(labels, rate, seed)
    raise ValueError(f"noise kind must be one of {NOISE_KINDS}; got {kind!r}")
