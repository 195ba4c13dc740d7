r"""Benchmark: the noisy-label finder's scoring time as the set grows.

    python -m pipelines.benchmarks.finder --samples=60000 --classes=11318 --dim=512

Times the finder's two scores on random unit embeddings with uniformly
random labels: `prism_tf.label_issues.clean_probabilities` (leave-one-out
class centres, softmax over every class, for every sample) and
`neighbour_agreement` (an exact search for each sample's --neighbours
nearest others): the finder's cost on top of embedding the training set,
which depends on the encoder. Median of --repeats calls, in this process,
jit off (the functions are eager TF ops).
"""

from typing import Callable, Dict, Sequence

from absl import app, flags
import numpy as np

from .common import time_per_call, unit_rows

FLAGS = flags.FLAGS


def _define_flags() -> None:
    flags.DEFINE_list("samples", ["60000"], "Training set sizes N.")
    flags.DEFINE_list("classes", ["11318"], "Numbers of classes C (SOP's training split: 11,318).")
    flags.DEFINE_integer("dim", 512, "Embedding width D.")
    flags.DEFINE_integer("repeats", 3, "Timed calls per cell (median).")
    flags.DEFINE_integer("neighbours", 10, "k of the neighbour agreement.")


def _median_seconds(call: Callable[[], object], repeats: int) -> float:
    """Median seconds of `repeats` single calls."""
    return float(np.median([time_per_call(call, 1) for _ in range(repeats)]))


def measure(samples: int, classes: int, dim: int, repeats: int,
            neighbours: int = 10) -> Dict[str, float]:
    """Seconds per call of each score (median) and unscorable samples."""
    from prism_tf.label_issues import clean_probabilities, neighbour_agreement
    rng = np.random.default_rng(0)
    embeddings = unit_rows(rng, samples, dim)
    labels = rng.integers(0, classes, samples)
    return {"centres": _median_seconds(
                lambda: clean_probabilities(embeddings, labels, classes), repeats),
            "neighbours": _median_seconds(
                lambda: neighbour_agreement(embeddings, labels, neighbours), repeats),
            # clean_probabilities leaves these NaN (their class has no other member).
            "unscorable": int((np.bincount(labels) == 1).sum())}


def table(results: Dict[tuple, Dict[str, float]], dim: int, neighbours: int) -> str:
    """Markdown: one line per (N, C)."""
    lines = [f"| N samples | C classes | D | class centres, s | {neighbours} nearest "
             "neighbours, s | unscorable (alone in class) |",
             "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for (samples, classes), r in results.items():
        lines.append(f"| {samples:,} | {classes:,} | {dim} | {r['centres']:.2f} "
                     f"| {r['neighbours']:.2f} | {r['unscorable']:,} |")
    return "\n".join(lines) + "\n"


def benchmark(samples: Sequence[int], classes: Sequence[int], dim: int, repeats: int,
              neighbours: int = 10) -> Dict[tuple, Dict[str, float]]:
    return {(n, c): measure(n, c, dim, repeats, neighbours)
            for n in samples for c in classes}


def main(argv):
    del argv
    results = benchmark([int(n) for n in FLAGS.samples], [int(c) for c in FLAGS.classes],
                        FLAGS.dim, FLAGS.repeats, FLAGS.neighbours)
    print(table(results, FLAGS.dim, FLAGS.neighbours))


if __name__ == "__main__":
    _define_flags()
    app.run(main)
