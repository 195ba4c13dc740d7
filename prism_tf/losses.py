"""Metric-learning losses: y_true = integer labels [B], y_pred = embeddings [B, D].

Every loss pairs each batch embedding (anchor) with a reference set: the batch
itself (self-pairs excluded) or, for a cross-batch memory, the given
`ref_embeddings` and `ref_labels`. Optional weights on anchors
(`sample_weight`) and references (`ref_weight`) act on the pairs, so a 0/1
mask gives exactly the loss of the selected samples without any dynamic
shape; that is how PRISM drops noisy samples under XLA. Against the batch
itself, `negative_sample_weight` weighs each sample where it is another
anchor's negative (by default as `sample_weight`): PRISM drops a suspect
label's anchor and positive pairs but can keep its negative ones.

>>> loss = MemoryContrastiveLoss()
>>> labels = [0, 0, 1]
>>> embeddings = [[1., 0.], [0.6, 0.8], [0.8, 0.6]]
>>> round(float(loss(labels, embeddings)), 4)
1.44
>>> round(float(loss(labels, embeddings, sample_weight=[1., 1., 0.])), 4)
0.4
>>> round(float(loss(labels, embeddings, sample_weight=[1., 1., 0.],
...                  negative_sample_weight=[1., 1., 1.])), 4)
1.28
"""

import dataclasses
import inspect
from typing import Dict

import keras
import tensorflow as tf

from prism_tf import compat
from prism_tf.distances import DISTANCES, cosine_similarity, pairwise_distance

# What `Loss.get_config` records when no reduction was chosen (Keras 3 / 2).
_KERAS_DEFAULT_REDUCTION = "sum_over_batch_size" if compat.KERAS_3 else "auto"
# Large but finite: an empty weighted log-sum-exp must not give NaN gradients.
_EMPTY_LOGIT = -1e4


@dataclasses.dataclass
class PairSet:
    """Anchors, references and the weights of their pairs."""

    anchors: tf.Tensor            # [B, D]
    references: tf.Tensor         # [M, D]
    same_label: tf.Tensor         # bool [B, M]
    anchor_weight: tf.Tensor      # [B]
    reference_weight: tf.Tensor   # [B, M] or [1, M]: weight of each reference
                                  # for each anchor, 0 for an anchor with itself

    @property
    def pair_weight(self) -> tf.Tensor:
        """Anchor weight x reference weight [B, M]."""
        return self.anchor_weight[:, None] * self.reference_weight

    @property
    def positive_weight(self) -> tf.Tensor:
        return tf.where(self.same_label, self.pair_weight, 0.0)

    @property
    def negative_weight(self) -> tf.Tensor:
        return tf.where(self.same_label, 0.0, self.pair_weight)


def make_pairs(labels, embeddings, sample_weight=None, ref_embeddings=None,
               ref_labels=None, ref_weight=None, negative_sample_weight=None) -> PairSet:
    """Builds the `PairSet` of a batch against itself or a reference set.

    Against itself, a sample weighs `sample_weight` as an anchor and as a
    positive, and `negative_sample_weight` (default: `sample_weight`) as a
    negative.
    """
    embeddings = tf.cast(tf.convert_to_tensor(embeddings), tf.float32)
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    batch = tf.shape(labels)[0]
    anchor_weight = (tf.ones([batch]) if sample_weight is None
                     else tf.reshape(tf.cast(sample_weight, tf.float32), [-1]))
    if ref_embeddings is None:
        if ref_labels is not None or ref_weight is not None:
            raise ValueError("ref_labels/ref_weight given without ref_embeddings")
        references, ref_labels = embeddings, labels
        as_negative = (anchor_weight if negative_sample_weight is None
                       else tf.reshape(tf.cast(negative_sample_weight, tf.float32), [-1]))
        reference_weight = tf.where(tf.equal(labels[:, None], labels[None, :]),
                                    anchor_weight[None, :], as_negative[None, :])
        reference_weight *= 1.0 - tf.eye(batch)
    else:
        if ref_labels is None:
            raise ValueError("ref_embeddings given without ref_labels")
        if negative_sample_weight is not None:
            raise ValueError("negative_sample_weight weighs the batch's own samples as "
                             "negatives; a reference set's rows take ref_weight")
        references = tf.cast(tf.convert_to_tensor(ref_embeddings), tf.float32)
        ref_labels = tf.reshape(tf.cast(ref_labels, tf.int32), [-1])
        # [1, M], broadcast where used: no [B, M] copy of a large memory's weights.
        reference_weight = (tf.ones_like(ref_labels, tf.float32) if ref_weight is None
                            else tf.reshape(tf.cast(ref_weight, tf.float32), [-1]))[None, :]
    return PairSet(
        anchors=embeddings,
        references=references,
        same_label=tf.equal(labels[:, None], ref_labels[None, :]),
        anchor_weight=anchor_weight,
        reference_weight=reference_weight,
    )


def weighted_mean(values: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """sum(w * v) / sum(w), 0 when all weights are 0."""
    return tf.math.divide_no_nan(tf.reduce_sum(weights * values), tf.reduce_sum(weights))


def weighted_logsumexp(logits: tf.Tensor, weights: tf.Tensor, axis: int) -> tf.Tensor:
    """log(sum(w * exp(x))) along `axis`; about -1e4 where every w is 0."""
    on = weights > 0
    peak = tf.reduce_max(tf.where(on, logits, _EMPTY_LOGIT), axis=axis, keepdims=True)
    total = tf.reduce_sum(
        weights * tf.exp(tf.where(on, logits - peak, 0.0)), axis=axis, keepdims=True)
    result = tf.math.log(tf.maximum(total, 1e-30)) + peak
    return tf.squeeze(result, axis)


def _check_distance(distance: str) -> str:
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}; got {distance!r}")
    return distance


class MetricLoss(keras.losses.Loss):
    """Base of the metric losses; subclasses implement `compute(pairs)`.

    Called as `loss(labels, embeddings, sample_weight=None,
    ref_embeddings=None, ref_labels=None, ref_weight=None,
    negative_sample_weight=None)`; returns a scalar. Weights act on pairs,
    so a 0/1 `sample_weight` equals calling the loss on the selected rows
    only; with `negative_sample_weight` of ones the dropped rows stay the
    kept anchors' negatives (against the batch itself; `make_pairs`).

    Where this departs from Keras's `Loss` contract, and why: a metric loss
    is not a mean of per-sample values (each formula reduces over its own
    pairs, e.g. TFA's triplet losses average over anchor-positive pairs), so
    `__call__` returns that reduction itself, `call(y_true, y_pred)` is the
    same value without weights, and `reduction` cannot be chosen: any value
    but Keras's default raises instead of being ignored. Keras still accepts
    these losses in `compile` and serializes them.
    """

    def __init__(self, name=None, reduction=None, **kwargs):
        if reduction not in (None, _KERAS_DEFAULT_REDUCTION):
            raise ValueError(
                f"{type(self).__name__}: reduction={reduction!r} is not supported; a "
                "metric loss reduces over its pairs as its formula says")
        super().__init__(name=name, **kwargs)

    def __call__(self, y_true, y_pred, sample_weight=None, ref_embeddings=None,
                 ref_labels=None, ref_weight=None, negative_sample_weight=None) -> tf.Tensor:
        with tf.name_scope(self.name or type(self).__name__):
            return self.compute(make_pairs(y_true, y_pred, sample_weight, ref_embeddings,
                                           ref_labels, ref_weight, negative_sample_weight))

    def call(self, y_true, y_pred) -> tf.Tensor:
        return self.compute(make_pairs(y_true, y_pred))

    def compute(self, pairs: PairSet) -> tf.Tensor:
        raise NotImplementedError


@compat.register_serializable(package="prism_tf")
class MemoryContrastiveLoss(MetricLoss):
    """XBM's contrastive loss (MCL) on cosine similarities s.

    Positive pairs add 1 - s (pairs with s >= 1 - epsilon, i.e. an
    embedding with itself, are skipped); negative pairs with s > margin add
    s. The sum over pairs is divided by the (weighted) number of anchors.
    """

    def __init__(self, margin: float = 0.5, epsilon: float = 1e-5,
                 name: str = "memory_contrastive_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.margin, self.epsilon = float(margin), float(epsilon)

    def compute(self, pairs: PairSet) -> tf.Tensor:
        s = cosine_similarity(pairs.anchors, pairs.references)
        # One [B, M] value per pair, then one weighted sum: against a memory of
        # M rows every extra [B, M] temporary costs B x M x 4 bytes.
        per_pair = tf.where(pairs.same_label,
                            tf.where(s < 1.0 - self.epsilon, 1.0 - s, 0.0),
                            tf.where(s > self.margin, s, 0.0))
        total = tf.reduce_sum(pairs.pair_weight * per_pair)
        return tf.math.divide_no_nan(total, tf.reduce_sum(pairs.anchor_weight))

    def get_config(self) -> dict:
        return {**super().get_config(), "margin": self.margin, "epsilon": self.epsilon}


@compat.register_serializable(package="prism_tf")
class ContrastiveLoss(MetricLoss):
    """Contrastive loss (Hadsell et al.), TFA's formula on every pair.

    For Euclidean distance d: same label d^2, else max(margin - d, 0)^2;
    averaged over pairs. TFA's version takes precomputed pair distances and
    0/1 pair labels; this one forms all pairs from labels and embeddings.
    """

    def __init__(self, margin: float = 1.0, name: str = "contrastive_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.margin = float(margin)

    def compute(self, pairs: PairSet) -> tf.Tensor:
        d = pairwise_distance(pairs.anchors, pairs.references, "L2")
        per_pair = tf.where(pairs.same_label, tf.square(d),
                            tf.square(tf.maximum(self.margin - d, 0.0)))
        return weighted_mean(per_pair, pairs.pair_weight)

    def get_config(self) -> dict:
        return {**super().get_config(), "margin": self.margin}


@compat.register_serializable(package="prism_tf")
class TripletSemiHardLoss(MetricLoss):
    """Triplet loss with semi-hard negatives (FaceNet), as in TFA.

    For each positive pair (a, p) the negative is the closest one farther
    than p, d(a, n) > d(a, p); if none, the farthest negative (0 if the
    anchor has none). Loss max(margin + d(a, p) - d(a, n), 0), averaged over
    positive pairs. Sorting negatives keeps memory at O(B x M).
    """

    def __init__(self, margin: float = 1.0, distance: str = "L2",
                 name: str = "triplet_semihard_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.margin, self.distance = float(margin), _check_distance(distance)

    def compute(self, pairs: PairSet) -> tf.Tensor:
        d = pairwise_distance(pairs.anchors, pairs.references, self.distance)
        is_negative = pairs.negative_weight > 0
        sorted_negatives = tf.sort(tf.where(is_negative, d, float("inf")), axis=1)
        # First negative strictly farther than each positive, per anchor row.
        index = tf.searchsorted(sorted_negatives, d, side="right")
        index = tf.minimum(index, tf.shape(d)[1] - 1)
        outside = tf.gather(sorted_negatives, index, batch_dims=1)
        farthest = tf.reduce_max(tf.where(is_negative, d, 0.0), axis=1, keepdims=True)
        negative = tf.where(tf.math.is_finite(outside) & (outside > d), outside, farthest)
        per_pair = tf.maximum(self.margin + d - negative, 0.0)
        return weighted_mean(per_pair, pairs.positive_weight)

    def get_config(self) -> dict:
        return {**super().get_config(), "margin": self.margin, "distance": self.distance}


@compat.register_serializable(package="prism_tf")
class TripletHardLoss(MetricLoss):
    """Batch-hard triplet loss, as in TFA.

    Per anchor: the farthest positive (0 if none) and the closest negative
    (the farthest reference if none); loss max(hp - hn + margin, 0), or
    log(1 + exp(hp - hn)) when `soft`; averaged over anchors.
    """

    def __init__(self, margin: float = 1.0, soft: bool = False, distance: str = "L2",
                 name: str = "triplet_hard_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.margin, self.soft = float(margin), bool(soft)
        self.distance = _check_distance(distance)

    def compute(self, pairs: PairSet) -> tf.Tensor:
        d = pairwise_distance(pairs.anchors, pairs.references, self.distance)
        valid = pairs.reference_weight > 0
        hardest_positive = tf.reduce_max(
            tf.where(pairs.positive_weight > 0, d, 0.0), axis=1)
        farthest = tf.reduce_max(tf.where(valid, d, 0.0), axis=1)
        is_negative = pairs.negative_weight > 0
        hardest_negative = tf.where(
            tf.reduce_any(is_negative, axis=1),
            tf.reduce_min(tf.where(is_negative, d, float("inf")), axis=1), farthest)
        gap = hardest_positive - hardest_negative
        per_anchor = tf.math.softplus(gap) if self.soft else tf.maximum(gap + self.margin, 0.0)
        return weighted_mean(per_anchor, pairs.anchor_weight)

    def get_config(self) -> dict:
        return {**super().get_config(), "margin": self.margin, "soft": self.soft,
                "distance": self.distance}


@compat.register_serializable(package="prism_tf")
class LiftedStructLoss(MetricLoss):
    """Lifted structured loss (Oh Song et al.), as in TFA.

    For a positive pair (i, j) with Euclidean distance d:
    J = log(sum_{k neg of i} exp(margin - d_ik) + sum_{l neg of j}
    exp(margin - d_lj)) + d_ij, and the loss is half the mean of
    max(J, 0)^2 over positive pairs. With a reference set, negatives of i
    are references and negatives of j are anchors.
    """

    def __init__(self, margin: float = 1.0, name: str = "lifted_struct_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.margin = float(margin)

    def compute(self, pairs: PairSet) -> tf.Tensor:
        d = pairwise_distance(pairs.anchors, pairs.references, "L2")
        # Negatives are chosen by weight > 0 but not scaled by it, as in TFA.
        negative = tf.cast(pairs.negative_weight > 0, tf.float32)
        anchor_side = weighted_logsumexp(self.margin - d, negative, axis=1)
        reference_side = weighted_logsumexp(self.margin - d, negative, axis=0)
        a, b = anchor_side[:, None], reference_side[None, :]
        # log(exp(a) + exp(b)), stable for the large negative empty sums.
        j = tf.maximum(a, b) + tf.math.log1p(tf.exp(-tf.abs(a - b))) + d
        return 0.5 * weighted_mean(tf.square(tf.maximum(j, 0.0)), pairs.positive_weight)

    def get_config(self) -> dict:
        return {**super().get_config(), "margin": self.margin}


@compat.register_serializable(package="prism_tf")
class MultiSimilarityLoss(MetricLoss):
    """Multi-similarity loss (Wang et al., CVPR 2019), without pair mining.

    Per anchor, on cosine similarities s:
    1/alpha log(1 + sum_pos exp(-alpha (s - base)))
    + 1/beta log(1 + sum_neg exp(beta (s - base))), averaged over anchors.
    Reference weights scale the terms inside the sums.
    """

    def __init__(self, alpha: float = 2.0, beta: float = 50.0, base: float = 0.5,
                 name: str = "multi_similarity_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.alpha, self.beta, self.base = float(alpha), float(beta), float(base)

    def compute(self, pairs: PairSet) -> tf.Tensor:
        s = cosine_similarity(pairs.anchors, pairs.references)
        positive_weight = tf.where(pairs.same_label, pairs.reference_weight, 0.0)
        negative_weight = tf.where(pairs.same_label, 0.0, pairs.reference_weight)
        positive = weighted_logsumexp(-self.alpha * (s - self.base), positive_weight, 1)
        negative = weighted_logsumexp(self.beta * (s - self.base), negative_weight, 1)
        per_anchor = (tf.math.softplus(positive) / self.alpha
                      + tf.math.softplus(negative) / self.beta)
        return weighted_mean(per_anchor, pairs.anchor_weight)

    def get_config(self) -> dict:
        return {**super().get_config(), "alpha": self.alpha, "beta": self.beta,
                "base": self.base}


# Every batch loss by the name configs use; `prism_tf.proxy_losses` adds its
# own when imported (`prism_tf` always imports it).
LOSSES = {
    "mcl": MemoryContrastiveLoss,
    "contrastive": ContrastiveLoss,
    "triplet_semihard": TripletSemiHardLoss,
    "triplet_hard": TripletHardLoss,
    "lifted": LiftedStructLoss,
    "multi_similarity": MultiSimilarityLoss,
}
# What only the model builder knows; a loss takes those its constructor names.
RUN_TIME_ARGUMENTS = ("num_classes", "embedding_dim")
_NOT_CONFIGURED = ("self", "name", "reduction", "kwargs") + RUN_TIME_ARGUMENTS


def defaults(name: str) -> Dict[str, object]:
    """The configurable arguments of loss `name` with their defaults, read
    from its constructor: what `config.loss.<name>` starts from, so the two
    cannot disagree.

    >>> defaults("triplet_semihard")
    {'margin': 1.0, 'distance': 'L2'}
    >>> defaults("proxy_anchor")
    {'alpha': 32.0, 'margin': 0.1}
    """
    return {parameter.name: parameter.default
            for parameter in inspect.signature(_registered(name).__init__).parameters.values()
            if parameter.name not in _NOT_CONFIGURED and parameter.default is not parameter.empty}


def get(name: str, **arguments):
    """The loss registered as `name`, built from `arguments`: its configured
    ones, and of the run-time ones (`RUN_TIME_ARGUMENTS`) those its
    constructor takes (a pair loss needs neither class count nor width).

    >>> get("mcl", margin=0.4, num_classes=10, embedding_dim=64).margin
    0.4
    >>> get("proxy_anchor", num_classes=10, embedding_dim=64).num_classes
    10
    """
    loss = _registered(name)
    takes = inspect.signature(loss.__init__).parameters
    return loss(**{key: value for key, value in arguments.items()
                   if key not in RUN_TIME_ARGUMENTS or key in takes})


def _registered(name: str) -> type:
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; registered: {sorted(LOSSES)}")
    return LOSSES[name]
