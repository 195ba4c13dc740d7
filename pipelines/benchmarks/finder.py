r"""Benchmark: the noisy-label finder's scoring time as the set grows.

    python -m pipelines.benchmarks.finder --samples=60000 --classes=11318 --dim=512

Times `prism_tf.label_issues.clean_probabilities` (leave-one-out class
centres, softmax over every class, for every sample) on random unit
embeddings with uniformly random labels: the finder's cost on top of
embedding the training set, which depends on the encoder. Median of
--repeats calls, in this process, jit off (the function is eager TF ops).
"""

import time
from typing import Dict, Sequence

from absl import app, flags
import numpy as np

from pipelines.benchmarks.common import unit_rows

FLAGS = flags.FLAGS


def _define_flags() -> None:
    flags.DEFINE_list("samples", ["60000"], "Training set sizes N.")
    flags.DEFINE_list("classes", ["11318"], "Numbers of classes C (SOP's training split: 11,318).")
    flags.DEFINE_integer("dim", 512, "Embedding width D.")
    flags.DEFINE_integer("repeats", 3, "Timed calls per cell (median).")


def measure(samples: int, classes: int, dim: int, repeats: int) -> Dict[str, float]:
    """Seconds per `clean_probabilities` call (median) and unscorable samples."""
    from prism_tf.label_issues import clean_probabilities
    rng = np.random.default_rng(0)
    embeddings = unit_rows(rng, samples, dim)
    labels = rng.integers(0, classes, samples)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        p_clean, _ = clean_probabilities(embeddings, labels, classes)
        times.append(time.perf_counter() - start)
    return {"seconds": float(np.median(times)), "unscorable": int(np.isnan(p_clean).sum())}


def table(results: Dict[tuple, Dict[str, float]], dim: int) -> str:
    """Markdown: one line per (N, C)."""
    lines = ["| N samples | C classes | D | seconds (median) | unscorable (alone in class) |",
             "| ---: | ---: | ---: | ---: | ---: |"]
    for (samples, classes), r in results.items():
        lines.append(f"| {samples:,} | {classes:,} | {dim} | {r['seconds']:.2f} "
                     f"| {r['unscorable']:,} |")
    return "\n".join(lines) + "\n"


def benchmark(samples: Sequence[int], classes: Sequence[int], dim: int,
              repeats: int) -> Dict[tuple, Dict[str, float]]:
    return {(n, c): measure(n, c, dim, repeats) for n in samples for c in classes}


def main(argv):
    del argv
    results = benchmark([int(n) for n in FLAGS.samples], [int(c) for c in FLAGS.classes],
                        FLAGS.dim, FLAGS.repeats)
    print(table(results, FLAGS.dim))


if __name__ == "__main__":
    _define_flags()
    app.run(main)
