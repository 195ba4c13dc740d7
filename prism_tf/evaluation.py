"""Leave-one-out retrieval metrics (Musgrave et al., "A Metric Learning Reality Check").

Every embedding is a query against all the others (self excluded), ranked
by cosine similarity. Exact kNN in TensorFlow, a chunk of queries at a time,
so a 60k x 60k evaluation needs chunk x N floats at once, not N x N.

For a query with R other items of its label:
- P@1: the nearest neighbour has the query's label.
- Recall@K: any of the K nearest has it.
- R-Precision: same-label items among the R nearest, over R.
- MAP@R: (1/R) sum_{i<=R} P@i * rel_i.
Queries whose label has no other item (R = 0) cannot be answered and are
left out of every mean.

>>> z = [[1., 0.], [0.9, 0.1], [0., 1.], [0.1, 0.9]]
>>> metrics = retrieval_metrics(z, [0, 0, 1, 1], recall_at=(1,))
>>> metrics["precision_at_1"], metrics["map_at_r"]
(1.0, 1.0)
"""

from typing import Callable, Dict, Sequence, Tuple

import numpy as np
import tensorflow as tf


@tf.function(reduce_retracing=True)
def _top_k_others(queries, gallery, offset, k):
    """Indices of the k most similar gallery rows to each query, self excluded."""
    similarity = tf.matmul(queries, gallery, transpose_b=True)
    rows = tf.range(tf.shape(queries)[0])
    similarity = tf.tensor_scatter_nd_update(
        similarity, tf.stack([rows, offset + rows], 1), tf.fill([tf.shape(queries)[0]], -np.inf))
    return tf.math.top_k(similarity, k=k).indices


def _neighbours_tensorflow(z: np.ndarray, k: int, chunk_size: int) -> np.ndarray:
    gallery = tf.constant(z)
    return np.concatenate([_top_k_others(gallery[start:start + chunk_size], gallery,
                                         tf.constant(start), k)
                           .numpy() for start in range(0, len(z), chunk_size)])


def _neighbours_faiss(z: np.ndarray, k: int) -> np.ndarray:
    import faiss  # optional dependency

    index = faiss.IndexFlatIP(z.shape[1])
    index.add(z)
    _, found = index.search(z, k + 1)
    # Drop each query itself; where a tie pushed it out of the k + 1, drop the last.
    others = found != np.arange(len(z))[:, None]
    others[others.all(axis=1), -1] = False
    return found[others].reshape(len(z), k)


def faiss_available() -> bool:
    """Whether faiss (the optional exact kNN backend) can be imported."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def retrieval_metrics(embeddings, labels, recall_at: Sequence[int] = (1, 2, 4, 8),
                      chunk_size: int = 1024, backend: str = "tensorflow") -> Dict[str, float]:
    """P@1, Recall@K, R-Precision and MAP@R of leave-one-out retrieval.

    Args:
      embeddings: [N, D] (normalised here).
      labels: [N] integer labels.
      recall_at: the K of each Recall@K.
      chunk_size: queries per similarity block (tensorflow backend).
      backend: "tensorflow" (exact, chunked), "faiss" (exact IndexFlatIP,
        needs faiss-cpu or faiss-gpu) or "auto" (faiss when installed).
    """
    if backend not in ("tensorflow", "faiss", "auto"):
        raise ValueError(f"backend must be 'tensorflow', 'faiss' or 'auto'; got {backend!r}")
    z = tf.math.l2_normalize(tf.cast(tf.convert_to_tensor(embeddings), tf.float32),
                             axis=1).numpy()
    broken = int((~np.isfinite(z).all(axis=1)).sum())
    if broken:
        raise ValueError(f"{broken} of {len(z)} embeddings are not finite (NaN or Inf): "
                         "no retrieval metric can be trusted")
    labels_np = np.asarray(labels).reshape(-1)
    n = labels_np.size
    if n < 2:
        raise ValueError(f"retrieval needs at least 2 embeddings; got {n}")
    if not recall_at or min(recall_at) < 1:
        raise ValueError(f"recall_at must be integers >= 1; got {tuple(recall_at)}")
    _, inverse, counts = np.unique(labels_np, return_inverse=True, return_counts=True)
    r = counts[inverse] - 1
    if not r.any():
        raise ValueError(f"retrieval needs a label with at least 2 items; all {n} labels "
                         "differ, so no query has a match to find")
    k = int(min(n - 1, max(int(r.max()), max(recall_at))))
    use_faiss = backend == "faiss" or (backend == "auto" and faiss_available())
    neighbours = _neighbours_faiss(z, k) if use_faiss else _neighbours_tensorflow(z, k, chunk_size)
    rel = labels_np[neighbours] == labels_np[:, None]
    answerable = r > 0
    rel, r = rel[answerable], r[answerable]
    within_r = np.arange(k)[None, :] < r[:, None]
    precision_at_i = np.cumsum(rel, axis=1) / np.arange(1, k + 1)
    metrics = {
        "precision_at_1": rel[:, 0].mean(),
        "r_precision": ((rel & within_r).sum(1) / r).mean(),
        "map_at_r": ((precision_at_i * rel * within_r).sum(1) / r).mean(),
        "num_queries": float(answerable.sum()),
    }
    for at in recall_at:
        metrics[f"recall_at_{at}"] = rel[:, :at].any(1).mean()
    return {name: float(value) for name, value in metrics.items()}


def as_graph(embed: Callable[[tf.Tensor], tf.Tensor],
             images: tf.TensorSpec) -> Callable[[tf.Tensor], tf.Tensor]:
    """`embed` traced once into a graph for batches like `images` (the
    spec of a dataset's image batches), of any batch size.

    A Keras model called eagerly dispatches each layer's ops one by one, at
    every evaluation: embedding an evaluation set with the small CNN took
    1.4 to 3 times as long that way (docs/BENCHMARKS.md, "Embedding an
    evaluation set"). Keep the returned function to reuse its trace.

    >>> import keras
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> embed = as_graph(lambda x: model(x, training=False), tf.TensorSpec([8, 3]))
    >>> [tuple(embed(tf.ones([n, 3])).shape) for n in (8, 5)]
    [(8, 2), (5, 2)]
    """
    batch = tf.TensorSpec([None, *images.shape[1:]], images.dtype)
    return tf.function(embed, input_signature=[batch])


def embed_dataset(embed: Callable[[tf.Tensor], tf.Tensor],
                  dataset: tf.data.Dataset) -> Tuple[np.ndarray, np.ndarray]:
    """(embeddings, labels) of a dataset of (images, labels) batches."""
    embeddings, labels = [], []
    for images, batch_labels in dataset:
        embeddings.append(np.asarray(embed(images)))
        labels.append(batch_labels.numpy())
    return np.concatenate(embeddings), np.concatenate(labels)
