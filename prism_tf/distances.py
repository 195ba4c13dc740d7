"""Pairwise distances between two sets of embeddings, with safe gradients."""

import tensorflow as tf

DISTANCES = ("L2", "squared-L2", "angular")


def cosine_similarity(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Cosine similarity of every row of `a` [N, D] with every row of `b` [M, D].

    The same numbers as `l2_normalize(a) @ l2_normalize(b)^T`, but `b`'s
    norms are applied after the matmul, so with a memory bank as `b` no
    normalised copy of the memory is written each step (computing the
    squared norms still makes one [M, D] temporary; docs/BENCHMARKS.md).
    """
    inverse_norm = tf.math.rsqrt(tf.maximum(tf.reduce_sum(tf.square(b), axis=1), 1e-12))
    return tf.matmul(tf.math.l2_normalize(a, axis=1), b, transpose_b=True) * inverse_norm


def pairwise_distance(a: tf.Tensor, b: tf.Tensor, metric: str = "L2") -> tf.Tensor:
    """Distances between every row of `a` [N, D] and of `b` [M, D]: [N, M].

    Metrics (TFA's names): "L2" Euclidean, "squared-L2" its square,
    "angular" 1 - cosine similarity (clipped at 0).
    """
    if metric == "angular":
        return tf.maximum(1.0 - cosine_similarity(a, b), 0.0)
    if metric not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}; got {metric!r}")
    squared = tf.maximum(
        tf.reduce_sum(tf.square(a), 1)[:, None]
        + tf.reduce_sum(tf.square(b), 1)[None, :]
        - 2.0 * tf.matmul(a, b, transpose_b=True), 0.0)
    if metric == "squared-L2":
        return squared
    # sqrt has an infinite slope at 0; zero distances get a zero gradient.
    zero = squared <= 0.0
    return tf.where(zero, 0.0, tf.sqrt(tf.where(zero, 1.0, squared)))
