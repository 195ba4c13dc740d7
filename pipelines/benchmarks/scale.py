r"""Benchmark: how PRISM's per-step cost grows with memory rows and classes.

    python -m pipelines.benchmarks.scale --memory=8192,65536,262144,1048576 \
        --classes=100,10000,100000

For every (memory rows K, classes C) a fresh process fills a memory bank
with random unit rows and times, with `jit_compile` off and on:
- the PRISM memory step: clean probability, smooth top-R and the enqueue
  of the kept rows with the class-sum update;
- the memory loss (MCL of the batch against every memory row) and its
  gradient with respect to the batch embeddings, what XBM and PRISM add to
  the encoder's backward pass.
Memory per cell: the bank's variables, and the peak that each timed row
allocates on top of what TensorFlow held before it (the CPU allocator's
statistics). One process per cell keeps one cell's allocations and
compiled functions out of the next one's figures.
"""

import multiprocessing
import time
from typing import Callable, Dict, List, Sequence, Tuple

from absl import app, flags
import numpy as np

# TensorFlow and prism_tf are imported inside the worker functions: the
# parent process only schedules cells and should not hold a runtime.
FLAGS = flags.FLAGS
MIB = 2 ** 20


def _define_flags() -> None:
    flags.DEFINE_list("memory", ["8192", "65536", "262144", "1048576"], "Memory rows K.")
    flags.DEFINE_list("classes", ["100", "10000", "100000"], "Numbers of classes C.")
    flags.DEFINE_integer("dim", 512, "Embedding width D.")
    flags.DEFINE_integer("batch", 64, "Batch size B.")
    flags.DEFINE_float("seconds", 2.0, "Time spent per row and mode (at least 3 calls).")


def _measure(fn: Callable[[], object], seconds: float) -> Tuple[float, float]:
    """(median ms per call, peak MiB allocated on top of what was held before)."""
    import tensorflow as tf

    from pipelines.benchmarks.common import time_per_call

    fn()  # trace and compile outside the measurement
    tf.config.experimental.reset_memory_stats("CPU:0")
    before = tf.config.experimental.get_memory_info("CPU:0")["current"]
    times: List[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < 3 or time.perf_counter() < deadline:
        times.append(time_per_call(fn, 1))
    peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
    return 1e3 * float(np.median(times)), (peak - before) / MIB


def measure_cell(memory: int, classes: int, dim: int, batch: int,
                 seconds: float) -> Dict[str, float]:
    """Times and memory of one (K, C) cell; run it in a fresh process."""
    import tensorflow as tf

    from pipelines.benchmarks.common import filled_bank, unit_rows
    from prism_tf import PrismSelector
    from prism_tf.losses import MemoryContrastiveLoss

    tf.get_logger().setLevel("ERROR")
    rng = np.random.default_rng(0)
    bank = filled_bank(rng, memory, dim, classes)
    selector = PrismSelector(0.5, window_size=30, max_noise_estimate=1.0)  # the authors' rule
    loss = MemoryContrastiveLoss()
    z = tf.constant(unit_rows(rng, batch, dim))
    labels = tf.constant(rng.integers(0, classes, batch), tf.int32)

    def memory_step():
        keep, p_clean = selector(z, labels, bank)
        bank.enqueue(z, labels, mask=keep)
        return p_clean

    def memory_loss():
        with tf.GradientTape() as tape:
            tape.watch(z)
            value = loss(labels, z, ref_embeddings=bank.embeddings,
                         ref_labels=bank.labels, ref_weight=bank.occupied())
        return value, tape.gradient(value, z)

    result = {"bank MiB": sum(v.numpy().nbytes for v in bank.weights) / MIB}
    for name, fn in (("memory step", memory_step), ("memory loss + gradient", memory_loss)):
        for jit in (False, True):
            ms, peak = _measure(tf.function(fn, jit_compile=jit), seconds)
            result[f"{name} | jit={jit} | ms"] = ms
            result[f"{name} | jit={jit} | peak MiB"] = peak
    return result


def _measure_cell_args(args: tuple) -> Dict[str, float]:
    return measure_cell(*args)


def benchmark(memories: Sequence[int], classes: Sequence[int], dim: int, batch: int,
              seconds: float) -> Dict[Tuple[int, int], Dict[str, float]]:
    """`measure_cell` for every (K, C), each in its own process, in turn."""
    cells = [(k, c) for k in memories for c in classes]
    # spawn: a fork would inherit this process's TensorFlow state and memory.
    context = multiprocessing.get_context("spawn")
    with context.Pool(1, maxtasksperchild=1) as pool:
        results = pool.map(_measure_cell_args,
                           [(k, c, dim, batch, seconds) for k, c in cells], chunksize=1)
    return dict(zip(cells, results))


def table(results: Dict[Tuple[int, int], Dict[str, float]]) -> str:
    """Markdown: one line per cell, ms and peak MiB per row and jit mode."""
    lines = ["| K rows | C classes | bank MiB | memory step ms (jit off / on) "
             "| peak MiB (off / on) | memory loss + grad ms (off / on) | peak MiB (off / on) |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for (memory, classes), r in results.items():
        cells = [f"{memory:,}", f"{classes:,}", f"{r['bank MiB']:,.0f}"]
        for name in ("memory step", "memory loss + gradient"):
            for unit, spec in (("ms", ".2f"), ("peak MiB", ",.0f")):
                off, on = (r[f"{name} | jit={jit} | {unit}"] for jit in (False, True))
                cells.append(f"{off:{spec}} / {on:{spec}}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    results = benchmark([int(k) for k in FLAGS.memory], [int(c) for c in FLAGS.classes],
                        FLAGS.dim, FLAGS.batch, FLAGS.seconds)
    print(f"D={FLAGS.dim} B={FLAGS.batch}")
    print(table(results))


if __name__ == "__main__":
    _define_flags()
    app.run(main)
