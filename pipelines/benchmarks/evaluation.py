r"""Benchmark: leave-one-out retrieval evaluation at SOP size, and
embedding an evaluation set.

    python -m pipelines.benchmarks.evaluation --samples=60502 --classes=11316

Random unit embeddings with random labels (the metrics are meaningless, the
work is real): exact kNN with the chunked TensorFlow backend and, when
installed, faiss, timed in one run. Peak memory: run under
`/usr/bin/time -v` and read "Maximum resident set size".

With `--embed_images=N`: N random images embedded by the small CNN in
batches of `--embed_batch`, as an evaluation does at every evaluation:
the Keras model called eagerly per batch against `as_graph` (the first
pass includes its one trace), in the same process.
"""


from typing import Dict

from absl import app, flags
import numpy as np
import tensorflow as tf

from .common import time_per_call
from prism_tf.encoders import small_cnn
from prism_tf.evaluation import as_graph, embed_dataset, faiss_available, retrieval_metrics

FLAGS = flags.FLAGS


def _define_flags() -> None:
    flags.DEFINE_integer("samples", 60502, "Embeddings N (queries = gallery).")
    flags.DEFINE_integer("classes", 11316, "Number of labels.")
    flags.DEFINE_integer("dim", 512, "Embedding width D.")
    flags.DEFINE_integer("chunk_size", 1024, "Queries per similarity block.")
    flags.DEFINE_integer("embed_images", 0, "Images to embed, eagerly and as one graph "
                         "(0: no embedding table).")
    flags.DEFINE_integer("embed_batch", 256, "Evaluation batch size for the embedding table.")
    flags.DEFINE_integer("image_size", 32, "Image side for the embedding table.")


def embed_times(images: int, batch_size: int, image_size: int) -> Dict[str, float]:
    """Seconds to embed `images` random images with the small CNN: called
    eagerly, and through `as_graph` (its first pass traces)."""
    model = small_cnn((image_size, image_size, 3))
    pixels = np.random.default_rng(0).random((images, image_size, image_size, 3), np.float32)
    data = tf.data.Dataset.from_tensor_slices((pixels, np.zeros(images, np.int32)))
    data = data.batch(batch_size)
    eager = lambda batch: model(batch, training=False)
    graph = as_graph(eager, data.element_spec[0])
    return {"eager": time_per_call(lambda: embed_dataset(eager, data), 2),
            "as_graph, first pass (traces)": time_per_call(lambda: embed_dataset(graph, data), 1),
            "as_graph": time_per_call(lambda: embed_dataset(graph, data), 2)}


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
    if FLAGS.embed_images:
        print(f"Embedding {FLAGS.embed_images} images of {FLAGS.image_size} x "
              f"{FLAGS.image_size}, batches of {FLAGS.embed_batch}, small CNN")
        for name, seconds in embed_times(FLAGS.embed_images, FLAGS.embed_batch,
                                         FLAGS.image_size).items():
            print(f"| {name} | {seconds:.2f} s |")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
