r"""Benchmark: leave-one-out retrieval evaluation at SOP size.

    python -m pipelines.benchmarks.evaluation --samples=60502 --classes=11316

Random unit embeddings with random labels (the metrics are meaningless, the
work is real): exact kNN with the chunked TensorFlow backend and, when
installed, faiss, timed in one run. Peak memory: run under
`/usr/bin/time -v` and read "Maximum resident set size".
"""


from absl import app, flags
import numpy as np

from .common import time_per_call
from prism_tf.evaluation import faiss_available, retrieval_metrics

FLAGS = flags.FLAGS


def _define_flags() -> None:
    flags.DEFINE_integer("samples", 60502, "Embeddings N (queries = gallery).")
    flags.DEFINE_integer("classes", 11316, "Number of labels.")
    flags.DEFINE_integer("dim", 512, "Embedding width D.")
    flags.DEFINE_integer("chunk_size", 1024, "Queries per similarity block.")


def main(argv):
    del argv
    rng = np.random.default_rng(0)
    z = rng.normal(size=(FLAGS.samples, FLAGS.dim)).astype(np.float32)
    labels = rng.integers(0, FLAGS.classes, FLAGS.samples)
    print(f"N={FLAGS.samples} D={FLAGS.dim} classes={FLAGS.classes}")
    for backend in ["tensorflow"] + (["faiss"] if faiss_available() else []):
        seconds = time_per_call(lambda: retrieval_metrics(
            z, labels, chunk_size=FLAGS.chunk_size, backend=backend), 1)
        print(f"| {backend} | {seconds:.1f} s |")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
