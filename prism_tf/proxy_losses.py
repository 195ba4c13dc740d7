"""Proxy losses: every class is learned as one or more proxy vectors.

Where the pair losses (`prism_tf.losses`) compare samples with each other,
these compare each sample with learned class proxies, so they own trainable
weights and are Keras layers. Called as `loss(labels, embeddings,
sample_weight=None)`, they return a scalar; a 0/1 `sample_weight` gives
exactly the loss of the selected rows, without dynamic shapes (XLA).

`class_similarity(embeddings)` [B, C] is how close each sample is to each
class's proxies: what PRISM's ProxySim (`PrismSelector(scoring="proxies")`)
scores with instead of the memory's class centres.

The proxies usually learn much faster than the encoder (SoftTriple: 0.01
against 1e-4; Proxy-Anchor: 100x): `PrismModel.compile(proxy_optimizer=...)`
gives them their own optimizer.

>>> loss = ProxyAnchorLoss(num_classes=3, embedding_dim=2)
>>> value = loss([0, 1, 2], [[1., 0.], [0., 1.], [-1., 0.]])
>>> value.shape, bool(value > 0)
(TensorShape([]), True)
>>> loss.class_similarity([[1., 0.]]).shape
TensorShape([1, 3])
"""

import math

import keras
import tensorflow as tf

from prism_tf import compat
from prism_tf.losses import LOSSES, weighted_logsumexp, weighted_mean
from prism_tf.memory_bank import check_embeddings, check_labels


class ProxyLoss(keras.layers.Layer):
    """Base of the proxy losses: `proxies_per_class` proxies per class, used
    as unit vectors.

    Subclasses implement `compute(labels, similarity, weight)` on the cosine
    similarities [B, C, proxies_per_class] and `class_similarity`.
    """

    def __init__(self, num_classes: int, embedding_dim: int, proxies_per_class: int = 1,
                 **kwargs):
        for name, value in (("num_classes", num_classes), ("embedding_dim", embedding_dim),
                            ("proxies_per_class", proxies_per_class)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{type(self).__name__}: {name} must be a positive "
                                 f"integer; got {value!r}")
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_classes, self.embedding_dim = num_classes, embedding_dim
        self.proxies_per_class = proxies_per_class
        # Only their directions count; any spread-out start does.
        self._proxies = self.add_weight(
            name="proxies", shape=(num_classes * proxies_per_class, embedding_dim),
            initializer=keras.initializers.RandomNormal(stddev=1.0), trainable=True)
        self.built = True

    @property
    def proxies(self) -> tf.Variable:
        """The proxies, class-major [num_classes * proxies_per_class, D] (not normalised)."""
        return compat.tf_variable(self._proxies)

    # Not `call`: as for the selector, Keras 3 layers take tensors only, and
    # a loss needs none of Layer.__call__'s input handling.
    def __call__(self, y_true, y_pred, sample_weight=None) -> tf.Tensor:
        """The loss of the batch; `sample_weight` [B] weighs each sample."""
        with tf.name_scope(self.name):
            # Under XLA the check is compiled away; PrismModel refuses such
            # a step itself.
            labels = check_labels(y_true, self.num_classes, type(self).__name__)
            similarity = self._similarity(check_embeddings(
                y_pred, self.embedding_dim, type(self).__name__))
            weight = (tf.ones_like(labels, tf.float32) if sample_weight is None
                      else tf.reshape(tf.cast(sample_weight, tf.float32), [-1]))
            return self.compute(labels, similarity, weight)

    def class_similarity(self, embeddings) -> tf.Tensor:
        """How close each sample is to each class [B, C], in [-1, 1]."""
        raise NotImplementedError

    def compute(self, labels: tf.Tensor, similarity: tf.Tensor,
                weight: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def _similarity(self, embeddings) -> tf.Tensor:
        """Cosine of every sample with every proxy [B, C, proxies_per_class]."""
        z = tf.math.l2_normalize(tf.cast(tf.convert_to_tensor(embeddings), tf.float32), -1)
        cosine = tf.matmul(z, tf.math.l2_normalize(self.proxies, -1), transpose_b=True)
        return tf.reshape(cosine, [-1, self.num_classes, self.proxies_per_class])

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(num_classes=self.num_classes, embedding_dim=self.embedding_dim)
        return config


def _positive(loss, **values: float) -> tuple:
    """The values as floats, or a ValueError naming the first that is not a
    finite number > 0 (a scale or temperature of 0 divides by zero)."""
    for name, value in values.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{type(loss).__name__}: {name} must be a finite number > 0; "
                             f"got {value!r}")
    return tuple(float(value) for value in values.values())


@compat.register_serializable(package="prism_tf")
class SoftTripleLoss(ProxyLoss):
    """SoftTriple loss (Qian et al., ICCV 2019), without its centre regulariser.

    Each class has `centers_per_class` centres; a sample's similarity to a
    class is the softmax(similarity / gamma)-weighted mean of its
    similarities to the class's centres, and the loss is the cross-entropy
    of `la * (similarity - margin at the own class)`, averaged over samples.
    The paper's regulariser merging redundant centres is left out, as
    pytorch-metric-learning leaves it out of its SoftTripleLoss. PRISM.md's
    settings: 10 centres per class under 500 classes, else 2; la 20, gamma
    0.1, margin 0.01.

    >>> loss = SoftTripleLoss(num_classes=2, embedding_dim=2, centers_per_class=3)
    >>> loss.proxies.shape
    TensorShape([6, 2])
    """

    def __init__(self, num_classes: int, embedding_dim: int, centers_per_class: int = 10,
                 la: float = 20.0, gamma: float = 0.1, margin: float = 0.01,
                 name: str = "soft_triple_loss", **kwargs):
        super().__init__(num_classes, embedding_dim, centers_per_class, name=name, **kwargs)
        self.la, self.gamma, self.margin = _positive(self, la=la, gamma=gamma) + (float(margin),)

    def class_similarity(self, embeddings) -> tf.Tensor:
        return self._relaxed(self._similarity(embeddings))

    def compute(self, labels, similarity, weight) -> tf.Tensor:
        own = tf.one_hot(labels, self.num_classes)
        logits = self.la * (self._relaxed(similarity) - self.margin * own)
        per_sample = tf.nn.softmax_cross_entropy_with_logits(own, logits)
        return weighted_mean(per_sample, weight)

    def _relaxed(self, similarity: tf.Tensor) -> tf.Tensor:
        """Similarity to each class: its centres weighted by softmax(s / gamma) [B, C]."""
        return tf.reduce_sum(tf.nn.softmax(similarity / self.gamma, axis=2) * similarity,
                             axis=2)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(centers_per_class=self.proxies_per_class, la=self.la,
                      gamma=self.gamma, margin=self.margin)
        return config


@compat.register_serializable(package="prism_tf")
class ProxyAnchorLoss(ProxyLoss):
    """Proxy-Anchor loss (Kim et al., CVPR 2020), one proxy per class.

    With cosine s(x, p):
    1/|P+| sum_{p in P+} log(1 + sum_{x of class p} exp(-alpha (s - margin)))
    + 1/|P| sum_{p in P} log(1 + sum_{x not of class p} exp(alpha (s + margin))),
    P+ being the classes with a sample (of weight > 0) in the batch and P all
    classes. Sample weights scale the terms inside the sums.

    >>> loss = ProxyAnchorLoss(num_classes=2, embedding_dim=2)
    >>> float(loss([0, 1], [[1., 0.], [0., 1.]], sample_weight=[0., 0.]))
    0.0
    """

    def __init__(self, num_classes: int, embedding_dim: int, alpha: float = 32.0,
                 margin: float = 0.1, name: str = "proxy_anchor_loss", **kwargs):
        super().__init__(num_classes, embedding_dim, 1, name=name, **kwargs)
        self.alpha, self.margin = _positive(self, alpha=alpha) + (float(margin),)

    def class_similarity(self, embeddings) -> tf.Tensor:
        return self._similarity(embeddings)[:, :, 0]

    def compute(self, labels, similarity, weight) -> tf.Tensor:
        s = similarity[:, :, 0]
        own = tf.one_hot(labels, self.num_classes) > 0
        positive_weight = tf.where(own, weight[:, None], 0.0)
        negative_weight = tf.where(own, 0.0, weight[:, None])
        # log(1 + sum w e^x) = softplus(log sum w e^x); an empty sum gives 0.
        positive = tf.math.softplus(weighted_logsumexp(
            -self.alpha * (s - self.margin), positive_weight, axis=0))
        negative = tf.math.softplus(weighted_logsumexp(
            self.alpha * (s + self.margin), negative_weight, axis=0))
        with_positives = tf.reduce_sum(
            tf.cast(tf.reduce_sum(positive_weight, axis=0) > 0, tf.float32))
        return (tf.math.divide_no_nan(tf.reduce_sum(positive), with_positives)
                + tf.reduce_mean(negative))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(alpha=self.alpha, margin=self.margin)
        return config


# The proxy losses by the names configs use, in the one registry
# `prism_tf.losses.get` builds from (it gives them num_classes and
# embedding_dim).
PROXY_LOSSES = {"soft_triple": SoftTripleLoss, "proxy_anchor": ProxyAnchorLoss}
LOSSES.update(PROXY_LOSSES)
