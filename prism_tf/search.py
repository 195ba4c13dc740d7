"""Exact nearest-neighbour search over a gallery of embeddings, in TF ops.

A `GalleryIndex` holds L2-normalised embeddings with each row's label and
path; `search` ranks every row by dot product (cosine similarity) and
returns the k best, exactly, as `tf.matmul` + `tf.math.top_k`. The same
function is what an export's `search` signatures run (`prism_tf.export`),
so TF Serving answers "which gallery images look like this one" with no
index beside it.

The rows are kept in shards of at most `shard_rows` (variables in an
export): each shard is scored and cut to its own top k before the shards'
candidates are merged, so a batch of Q queries needs Q x shard_rows scores
at once, not Q x N, and no single tensor holds the whole gallery (a graph
constant is capped at 2 GB by protocol buffers; 1M x 512 floats is 2 GB).
Ties keep the lower row first, as `top_k` does, shard by shard.

>>> index = GalleryIndex([[1., 0.], [0., 1.], [0.6, 0.8]], labels=[3, 4, 4],
...                      paths=["a.png", "b.png", "c.png"], shard_rows=2)
>>> found = index.search([[0.8, 0.6]], k=2)
>>> found.rows.tolist(), found.labels.tolist(), found.paths.tolist()
([[2, 0]], [[4, 3]], [['c.png', 'a.png']])
>>> [(hit.rank, hit.label, hit.path) for hit in index.lookup([[0.8, 0.6]], k=1)[0]]
[(1, 4, 'c.png')]
"""

import dataclasses
import functools
import json
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import tensorflow as tf

from prism_tf.files import writing_folder

EMBEDDINGS_FILE = "embeddings.npy"
LABELS_FILE = "labels.npy"
META_FILE = "index.json"
# 65,536 rows of 512 floats: 128 MiB a shard; the score block of 64 queries 16 MiB.
SHARD_ROWS = 65536


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """The k best gallery rows of each query, best first, each [Q, k]:
    `rows` (gallery row ids), `scores` (cosine similarity), `labels`, `paths`."""

    rows: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    paths: np.ndarray


@dataclasses.dataclass(frozen=True)
class Lookup:
    """One neighbour, as TF Similarity's `lookup` gives it: `distance` is
    1 - cosine similarity; `path` is what TF Similarity calls `data`."""

    rank: int
    row: int
    distance: float
    label: int
    path: str


def top_k_rows(queries: tf.Tensor, shards: Sequence[tf.Tensor], k: int):
    """(scores, rows) [Q, k] of the k rows of the shards (in order, each
    [rows_i, D]) with the highest dot product with each query [Q, D]; the
    exact search both `GalleryIndex.search` and the export run."""
    candidates, rows, start = [], [], 0
    for shard in shards:
        scores, found = tf.math.top_k(tf.matmul(queries, shard, transpose_b=True),
                                      k=min(k, int(shard.shape[0])))
        candidates.append(scores)
        rows.append(found + start)
        start += int(shard.shape[0])
    scores, best = tf.math.top_k(tf.concat(candidates, 1), k=k)
    return scores, tf.gather(tf.concat(rows, 1), best, batch_dims=1)


class GalleryIndex:
    """Gallery embeddings [N, D] (normalised here), labels [N] and paths [N]
    (empty strings where the gallery holds images, not files), searched
    exactly by cosine similarity. `source` says what was indexed; `probe`
    [D], the embedding model's answer for `prism_tf.export.probe_images`,
    lets an export refuse an index of another model (None: unchecked)."""

    def __init__(self, embeddings, labels, paths: Optional[Sequence[str]] = None,
                 shard_rows: int = SHARD_ROWS, source: str = "", probe=None):
        embeddings = np.asarray(embeddings, np.float32)
        if embeddings.ndim != 2 or not len(embeddings):
            raise ValueError(f"a gallery needs embeddings [N, D] with N >= 1; got shape "
                             f"{embeddings.shape}")
        norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
        bad = ~(np.isfinite(norms[:, 0]) & (norms[:, 0] > 0))
        if bad.any():
            raise ValueError(f"{int(bad.sum())} gallery embeddings are not finite or have "
                             f"length 0 (first: row {int(np.argmax(bad))}): they cannot be "
                             "compared by cosine similarity")
        self.embeddings = embeddings / norms
        self.labels = np.asarray(labels, np.int64).reshape(-1)
        self.paths = np.asarray([""] * len(embeddings) if paths is None else paths, dtype=str)
        if not len(self.labels) == len(self.paths) == len(embeddings):
            raise ValueError(f"{len(embeddings)} embeddings, {len(self.labels)} labels and "
                             f"{len(self.paths)} paths: expected one of each per gallery row")
        if shard_rows < 1:
            raise ValueError(f"shard_rows={shard_rows}: expected a positive number of rows")
        self.shard_rows = int(shard_rows)
        self.source = source
        # The embedding model's answer for a fixed image (prism_tf.export.probe_images).
        self.probe = None if probe is None else np.asarray(probe, np.float32).reshape(-1)

    def __len__(self) -> int:
        return len(self.embeddings)

    @property
    def dim(self) -> int:
        """The embedding width D."""
        return int(self.embeddings.shape[1])

    def shards(self) -> List[np.ndarray]:
        """The embeddings in consecutive blocks of at most `shard_rows` rows."""
        return [self.embeddings[start:start + self.shard_rows]
                for start in range(0, len(self), self.shard_rows)]

    @functools.cached_property
    def _shard_tensors(self) -> List[tf.Tensor]:
        # Converted once: a search would otherwise copy the gallery each call.
        return [tf.constant(shard) for shard in self.shards()]

    def search(self, queries, k: int = 10) -> SearchResult:
        """The k nearest gallery rows of each query embedding [Q, D]
        (normalised here); k larger than the gallery, and NaN or zero
        queries, are refused."""
        queries = np.asarray(queries, np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"queries of shape {queries.shape}: expected [Q, {self.dim}]")
        if not 1 <= k <= len(self):
            raise ValueError(f"k={k}: expected 1 to the gallery's {len(self)} rows")
        norms = np.linalg.norm(queries, axis=1)
        if not (np.isfinite(norms) & (norms > 0)).all():
            raise ValueError("queries must be finite with a non-zero length (a NaN or zero "
                             "query has no nearest rows)")
        queries = tf.math.l2_normalize(queries, axis=1)
        scores, rows = top_k_rows(queries, self._shard_tensors, k)
        rows = rows.numpy().astype(np.int64)
        return SearchResult(rows, scores.numpy(), self.labels[rows], self.paths[rows])

    def lookup(self, queries, k: int = 10) -> List[List[Lookup]]:
        """`search` as TF Similarity's `model.lookup` lists it: per query,
        its k neighbours nearest first."""
        found = self.search(queries, k)
        return [[Lookup(rank + 1, int(row), float(1.0 - score), int(label), str(path))
                 for rank, (row, score, label, path) in enumerate(zip(*columns))]
                for columns in zip(found.rows, found.scores, found.labels, found.paths)]

    def save(self, folder: str) -> Path:
        """Writes `folder/` (embeddings.npy, labels.npy, index.json with the
        paths) and returns it; the files are written to a hidden folder
        beside it that replaces the old index only when complete."""
        with writing_folder(folder) as temporary:
            np.save(temporary / EMBEDDINGS_FILE, self.embeddings)
            np.save(temporary / LABELS_FILE, self.labels)
            meta = {"rows": len(self), "dim": self.dim, "shard_rows": self.shard_rows,
                    "source": self.source,
                    "probe": None if self.probe is None else self.probe.tolist(),
                    "paths": self.paths.tolist()}
            (temporary / META_FILE).write_text(json.dumps(meta))
        return Path(folder)

    @classmethod
    def load(cls, folder: str) -> "GalleryIndex":
        """The index `save` wrote to `folder`."""
        folder = Path(folder)
        if not (folder / META_FILE).is_file():
            raise FileNotFoundError(f"{folder}: not a gallery index (no {META_FILE}; "
                                    "prism-tf-index writes one)")
        meta = json.loads((folder / META_FILE).read_text())
        embeddings = np.load(folder / EMBEDDINGS_FILE, mmap_mode="r")
        if embeddings.shape != (meta["rows"], meta["dim"]):
            raise ValueError(f"{folder}: {EMBEDDINGS_FILE} has shape {embeddings.shape}, "
                             f"{META_FILE} says {[meta['rows'], meta['dim']]}")
        return cls(embeddings, np.load(folder / LABELS_FILE), meta["paths"],
                   meta["shard_rows"], meta["source"], meta["probe"])


def leave_one_out_recall(rows: np.ndarray, labels: np.ndarray,
                         recall_at: Sequence[int]) -> dict:
    """Recall@K of the gallery searched with its own rows as queries, in
    order (`rows` [N, k] from a search with k = max(recall_at) + 1, labels
    [N]), each query's own row left out as `prism_tf.evaluation` does (the
    last where a tie pushed it out); queries alone in their label are left
    out of the means. What `pipelines.evaluate` reports for the same split.

    >>> leave_one_out_recall(np.array([[0, 1], [1, 0], [2, 0]]), np.array([5, 5, 6]), [1])
    {'recall_at_1': 1.0}
    """
    rows, labels = np.asarray(rows), np.asarray(labels)
    if rows.shape[1] < max(recall_at) + 1:
        raise ValueError(f"rows of {rows.shape[1]} neighbours: expected max(recall_at) + 1 = "
                         f"{max(recall_at) + 1}")
    others = rows != np.arange(len(rows))[:, None]
    others[others.all(axis=1), -1] = False
    neighbours = rows[others].reshape(len(rows), -1)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    answerable = counts[inverse] > 1
    relevant = (labels[neighbours] == labels[:, None])[answerable]
    return {f"recall_at_{k}": float(relevant[:, :k].any(1).mean()) for k in recall_at}
