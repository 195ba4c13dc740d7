r"""Benchmark: PRISM selection per step against one bare B x C x D matmul.

Everything is measured in one run, interleaved, so the ratios hold on a
noisy shared machine:

    python -m pipelines.benchmarks.selector --classes=11318 --memory=59551

Rows: the floor (z @ centres^T for random centres), the selector's
clean probability + smooth top-R with class centres, the same plus the
enqueue of the kept rows (a full PRISM memory step), the unaccelerated
`scoring="full"` form, each with `jit_compile` off and on; and the same rule
as a per-sample Python loop (NumPy inside), timed on fewer calls.
"""

from typing import Dict, List

from absl import app, flags
import numpy as np
import tensorflow as tf

from .common import filled_bank, time_per_call, unit_rows
from prism_tf import PrismSelector
from prism_tf.selector import NO_GUARDS

FLAGS = flags.FLAGS


def _define_flags() -> None:
    flags.DEFINE_integer("classes", 11318, "Number of classes C.")
    flags.DEFINE_integer("memory", 59551, "Memory rows K.")
    flags.DEFINE_integer("dim", 512, "Embedding width D.")
    flags.DEFINE_integer("batch", 64, "Batch size B.")
    flags.DEFINE_integer("iterations", 50, "Timed calls per repetition.")
    flags.DEFINE_integer("repetitions", 5, "Interleaved repetitions; the median is kept.")


class PythonLoopSelector:
    """The same rule in the style of the authors' PyTorch code: a Python loop
    over the batch, NumPy inside, a Python list as the window. The baseline
    the vectorised selector is measured against."""

    def __init__(self, noise_rate: float, window_size: int):
        self.noise_rate, self.window_size, self.window = noise_rate, window_size, []

    def __call__(self, z: np.ndarray, labels: np.ndarray, memory: np.ndarray,
                 memory_labels: np.ndarray, num_classes: int) -> np.ndarray:
        counts = np.bincount(memory_labels[memory_labels >= 0], minlength=num_classes)
        present = counts > 0
        p_clean = np.ones(len(z))
        for i in range(len(z)):
            similarity = memory @ z[i]
            class_mean = np.bincount(memory_labels[memory_labels >= 0],
                                     weights=similarity[memory_labels >= 0],
                                     minlength=num_classes) / np.maximum(counts, 1)
            if present[labels[i]]:
                logits = class_mean[present]
                p_clean[i] = (np.exp(class_mean[labels[i]] - logits.max())
                              / np.exp(logits - logits.max()).sum())
        removed = int(self.noise_rate * len(z))
        order = np.argsort(p_clean, kind="stable")
        q = p_clean[order[removed - 1]]
        if np.isfinite(q) and q < 1:
            self.window = (self.window + [q])[-self.window_size:]
        keep = np.ones(len(z), bool)
        keep[order[:removed]] = False
        if self.window and (p_clean > np.mean(self.window)).any():
            keep = p_clean > np.mean(self.window)
        elif self.window:
            self.window = self.window[-1:]
        return keep


def benchmark(classes: int, memory: int, dim: int, batch: int, iterations: int,
              repetitions: int) -> Dict[str, float]:
    """Median milliseconds per call of each row, measured interleaved."""
    rng = np.random.default_rng(0)
    bank = filled_bank(rng, memory, dim, classes)
    centers = tf.constant(unit_rows(rng, classes, dim))
    z = tf.constant(unit_rows(rng, batch, dim))
    labels = tf.constant(rng.integers(0, classes, batch), tf.int32)
    # No guard: the authors' rule, which the Python loop reproduces.
    selectors = {scoring: PrismSelector(0.5, window_size=30, scoring=scoring,
                                        **NO_GUARDS)
                 for scoring in ("centers", "full")}

    def step(selector, enqueue):
        def run():
            weights, logs = selector(z, labels, bank)
            if enqueue:
                bank.enqueue(z, labels, mask=weights > 0)
            return weights, logs
        return run

    plain = {
        "matmul B x C x D (floor)": lambda: tf.matmul(z, centers, transpose_b=True),
        "select, centres": step(selectors["centers"], enqueue=False),
        "select + enqueue, centres": step(selectors["centers"], enqueue=True),
        "select, full memory": step(selectors["full"], enqueue=False),
    }
    rows = {}
    for name, fn in plain.items():
        for jit in (False, True):
            rows[f"{name} | jit={jit}"] = tf.function(fn, jit_compile=jit)
    loop = PythonLoopSelector(0.5, 30)
    memory, memory_labels = bank.embeddings.numpy(), bank.labels.numpy()
    z_np, labels_np = z.numpy(), labels.numpy()
    rows["per-sample Python loop (authors' style) | jit=False"] = lambda: tf.constant(
        loop(z_np, labels_np, memory, memory_labels, classes))
    times: Dict[str, List[float]] = {name: [] for name in rows}
    for fn in rows.values():
        time_per_call(fn, 2)  # trace and compile
    for _ in range(repetitions):
        for name, fn in rows.items():
            slow = name.startswith("per-sample")
            times[name].append(time_per_call(fn, max(1, iterations // 25) if slow else iterations))
    return {name: 1e3 * float(np.median(values)) for name, values in times.items()}


def main(argv):
    del argv
    tf.get_logger().setLevel("ERROR")  # one function object traced per jit mode
    results = benchmark(FLAGS.classes, FLAGS.memory, FLAGS.dim, FLAGS.batch,
                        FLAGS.iterations, FLAGS.repetitions)
    print(f"C={FLAGS.classes} K={FLAGS.memory} D={FLAGS.dim} B={FLAGS.batch}")
    print("| row | jit_compile | ms/step | x floor (same jit_compile) |")
    print("| --- | --- | ---: | ---: |")
    for name, ms in results.items():
        row, jit = name.split(" | ")
        floor = results[f"matmul B x C x D (floor) | {jit}"]
        print(f"| {row} | {jit[4:]} | {ms:.2f} | {ms / floor:.2f} |")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
