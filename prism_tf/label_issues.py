"""Which training labels look wrong, and how well a ranking finds them.

`clean_probabilities` scores every sample of a labelled set as PRISM's
selector scores a batch, through the same scorings (`prism_tf.scoring`:
class centres by default, vMF-Sim, a proxy loss's proxies), but against the
whole set instead of a memory, and leave-one-out: a sample never counts
towards its own class, which would otherwise pull small classes' scores up
(a class of 5 images would hold a fifth of each member's own embedding).
`neighbour_agreement` is the local view the centres lack: the share of a
sample's nearest neighbours that carry its label. A group of wrong labels
from a class that has no centre (small-cluster noise: the source class is
gone) sits between centres and is missed by them, but its neighbours'
labels disagree; a clean sample far from its class centre (an atypical
view) is missed by neighbours less. The noisy-label finder ranks by the
product of the two (docs/BENCHMARKS.md, "Noisy-label finder against
cleanlab").
`ranking_metrics` says how well such a score ranks the truly wrong labels
first.
"""

from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from prism_tf.memory_bank import MemoryBank
from prism_tf.scoring import CenterSimilarity, Scoring


def clean_probabilities(embeddings, labels, num_classes: int, temperature: float = 0.1,
                        chunk_size: int = 4096, scoring: Optional[Scoring] = None
                        ) -> Tuple[np.ndarray, np.ndarray]:
    """P(label is clean) and the most likely label of every sample.

    Args:
      embeddings: float [N, D], L2-normalised as the model outputs them.
      labels: int [N] in [0, num_classes), the labels to check.
      num_classes: C.
      temperature: divides the logits. 0.1, not `PrismSelector`'s 1: the
        sharper softmax ranks a whole set better (ROC AUC up by 0 to 0.024
        on the benchmark runs, docs/BENCHMARKS.md); the selector's
        threshold works on either.
      chunk_size: samples scored at a time ([chunk, C] similarities).
      scoring: a `prism_tf.scoring.Scoring` with a leave-one-out form
        (`leave_one_out_logits`); None: `CenterSimilarity`. A proxy scoring
        comes attached to its loss (`attach`).

    Returns:
      p_clean: float64 [N]; NaN where the own class takes no part without
        the sample (it is the only one of its class, so nothing else says
        what that class looks like).
      most_likely: int64 [N], the class that scores best (the own class
        leaving the sample out).

    >>> z = [[1., 0.], [1., 0.], [0., 1.], [0., 1.], [0., 1.]]
    >>> p, best = clean_probabilities(z, [0, 0, 1, 1, 0], num_classes=2)
    >>> best.tolist()
    [0, 0, 1, 1, 1]
    >>> bool(p[4] < 0.5 < p[0])
    True
    """
    z = tf.cast(tf.convert_to_tensor(embeddings), tf.float32)
    labels = np.asarray(labels, np.int64).reshape(-1)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"clean_probabilities: labels must be in [0, {num_classes})")
    if z.shape.rank != 2 or z.shape[0] != labels.size:
        raise ValueError(f"clean_probabilities: embeddings {z.shape} for {labels.size} labels")
    scoring = scoring or CenterSimilarity()
    # The whole set as one memory: the scorings read their class statistics from it.
    bank = MemoryBank(max(labels.size, 1), int(z.shape[1]), num_classes)
    if labels.size:
        bank.enqueue(z, labels)
    p_clean, most_likely = [], []
    for start in range(0, labels.size, chunk_size):
        own = tf.constant(labels[start:start + chunk_size], tf.int32)
        logits, present = scoring.leave_one_out_logits(z[start:start + chunk_size], own, bank)
        logits = tf.where(present, logits / temperature, -np.inf)
        own_onehot = tf.one_hot(own, num_classes) > 0
        own_logit = tf.reduce_sum(tf.where(own_onehot, logits, 0.0), axis=1)
        probability = tf.exp(own_logit - tf.reduce_logsumexp(logits, axis=1))
        own_present = tf.reduce_any(own_onehot & present, axis=1)
        p_clean.append(tf.where(own_present, probability, np.nan).numpy())
        most_likely.append(tf.argmax(logits, axis=1).numpy())
    if not p_clean:
        return np.zeros(0), np.zeros(0, np.int64)
    return np.concatenate(p_clean).astype(np.float64), np.concatenate(most_likely)


def neighbour_agreement(embeddings, labels, k: int = 10,
                        chunk_size: int = 1024) -> np.ndarray:
    """(same-label neighbours + 1) / (k + 2) among each sample's `k` nearest
    others by cosine similarity, float64 [N] in (0, 1).

    The +1 / +2 (Laplace) keeps a sample whose neighbours all disagree
    above 0, so the centres still order those. Exact: a [chunk, N]
    similarity block at a time, the sample itself masked out (duplicates
    of it still count as neighbours).

    >>> z = [[1., 0.], [.9, .1], [.8, .2], [0., 1.]]
    >>> neighbour_agreement(z, [0, 0, 1, 1], k=1).tolist()
    [0.6666666666666666, 0.6666666666666666, 0.3333333333333333, 0.6666666666666666]
    """
    z = tf.math.l2_normalize(tf.cast(tf.convert_to_tensor(embeddings), tf.float32), -1)
    labels = np.asarray(labels, np.int64).reshape(-1)
    if not 1 <= k < labels.size:
        raise ValueError(f"neighbour_agreement: k must be in [1, {labels.size}); got {k}")
    same = []
    for start in range(0, labels.size, chunk_size):
        chunk = z[start:start + chunk_size]
        similarity = tf.matmul(chunk, z, transpose_b=True)
        itself = tf.one_hot(tf.range(start, start + tf.shape(chunk)[0]), labels.size) > 0
        _, nearest = tf.math.top_k(tf.where(itself, -np.inf, similarity), k=k)
        same.append((labels[nearest.numpy()] == labels[start:start + chunk_size, None]).sum(1))
    return (np.concatenate(same) + 1.0) / (k + 2.0)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    return (upper - (counts - 1) / 2.0)[inverse]


def ranking_metrics(suspicion, is_wrong, top_k: Sequence[int] = ()) -> Dict[str, float]:
    """How well `suspicion` (higher = more likely wrong) ranks the wrong labels.

    Returns ROC AUC (ties count half), average precision (samples in
    decreasing suspicion, ties in their given order), and precision and
    recall among the `k` most suspected, for each k in `top_k` and for k =
    the number of wrong labels (`..._at_wrong_count`: there precision equals
    recall).

    >>> m = ranking_metrics([0.9, 0.8, 0.3, 0.1], [True, False, True, False], top_k=[1])
    >>> m["roc_auc"], round(m["average_precision"], 3), m["precision_at_1"]
    (0.75, 0.833, 1.0)
    """
    suspicion = np.asarray(suspicion, np.float64).reshape(-1)
    is_wrong = np.asarray(is_wrong, bool).reshape(-1)
    if suspicion.size != is_wrong.size or not np.isfinite(suspicion).all():
        raise ValueError("ranking_metrics: one finite suspicion per sample is needed")
    wrong, right = int(is_wrong.sum()), int((~is_wrong).sum())
    if not wrong or not right:
        raise ValueError("ranking_metrics: needs both wrong and right labels "
                         f"(got {wrong} wrong, {right} right)")
    ranks = _average_ranks(suspicion)
    metrics = {"roc_auc": (ranks[is_wrong].sum() - wrong * (wrong + 1) / 2) / (wrong * right)}
    order = np.argsort(-suspicion, kind="stable")
    hits = np.cumsum(is_wrong[order])
    positions = np.arange(1, suspicion.size + 1)
    metrics["average_precision"] = float((hits / positions)[is_wrong[order]].mean())
    for name, k in [(f"at_{k}", k) for k in top_k] + [("at_wrong_count", wrong)]:
        found = int(hits[min(k, suspicion.size) - 1])
        metrics[f"precision_{name}"] = found / min(k, suspicion.size)
        metrics[f"recall_{name}"] = found / wrong
    return {name: float(value) for name, value in metrics.items()}
