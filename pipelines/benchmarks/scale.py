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
statistics; where the allocator keeps none, the process's peak resident
set, and the table says which). One process per cell keeps one cell's allocations and
compiled functions out of the next one's figures.
"""

import multiprocessing
from pathlib import Path
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

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


class PeakMemory:
    """Bytes allocated at the peak since `reset()`, from the best source the
    machine has (`source`): TensorFlow's CPU allocator statistics
    ("allocator"); where that allocator keeps none (seen on an AMD EPYC
    machine: "Allocator stats not available"), the process's peak resident
    set, reset through /proc/self/clear_refs ("resident", Linux; it also
    counts memory outside TensorFlow's allocator); else nothing
    ("unavailable", `peak_mib` None)."""

    STATUS = Path("/proc/self/status")
    CLEAR_REFS = Path("/proc/self/clear_refs")

    def __init__(self):
        import tensorflow as tf

        self._tf = tf
        self._baseline = 0
        try:
            tf.config.experimental.reset_memory_stats("CPU:0")
            self.source = "allocator"
        except ValueError:
            self.source = "resident" if self._reset_resident_peak() else "unavailable"

    def _reset_resident_peak(self) -> bool:
        try:
            self.CLEAR_REFS.write_text("5")   # 5: reset the peak resident set size
            return True
        except OSError:
            return False

    def _resident(self, field: str) -> int:
        for line in self.STATUS.read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024   # kB
        raise OSError(f"no {field} in {self.STATUS}")

    def reset(self) -> None:
        if self.source == "allocator":
            self._tf.config.experimental.reset_memory_stats("CPU:0")
            self._baseline = self._tf.config.experimental.get_memory_info("CPU:0")["current"]
        elif self.source == "resident":
            self._reset_resident_peak()
            self._baseline = self._resident("VmRSS")

    def peak_mib(self) -> Optional[float]:
        if self.source == "allocator":
            peak = self._tf.config.experimental.get_memory_info("CPU:0")["peak"]
        elif self.source == "resident":
            peak = self._resident("VmHWM")
        else:
            return None
        return (peak - self._baseline) / MIB


def _measure(fn: Callable[[], object], seconds: float,
             memory: PeakMemory) -> Tuple[float, Optional[float]]:
    """(median ms per call, peak MiB allocated on top of what was held
    before, None where it cannot be measured)."""
    from .common import time_per_call

    fn()  # trace and compile outside the measurement
    memory.reset()
    times: List[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < 3 or time.perf_counter() < deadline:
        times.append(time_per_call(fn, 1))
    return 1e3 * float(np.median(times)), memory.peak_mib()


def measure_cell(memory: int, classes: int, dim: int, batch: int,
                 seconds: float) -> Dict[str, float]:
    """Times and memory of one (K, C) cell; run it in a fresh process."""
    import tensorflow as tf

    from .common import filled_bank, unit_rows
    from prism_tf import PrismSelector
    from prism_tf.selector import NO_GUARDS
    from prism_tf.losses import MemoryContrastiveLoss

    tf.get_logger().setLevel("ERROR")
    rng = np.random.default_rng(0)
    bank = filled_bank(rng, memory, dim, classes)
    selector = PrismSelector(0.5, window_size=30, **NO_GUARDS)  # the authors' rule
    loss = MemoryContrastiveLoss()
    z = tf.constant(unit_rows(rng, batch, dim))
    labels = tf.constant(rng.integers(0, classes, batch), tf.int32)

    def memory_step():
        weights, logs = selector(z, labels, bank)
        bank.enqueue(z, labels, mask=weights > 0)
        return weights

    def memory_loss():
        with tf.GradientTape() as tape:
            tape.watch(z)
            value = loss(labels, z, ref_embeddings=bank.embeddings,
                         ref_labels=bank.labels, ref_weight=bank.occupied())
        return value, tape.gradient(value, z)

    peak_memory = PeakMemory()
    result = {"bank MiB": sum(v.numpy().nbytes for v in bank.weights) / MIB,
              "memory source": peak_memory.source}
    for name, fn in (("memory step", memory_step), ("memory loss + gradient", memory_loss)):
        for jit in (False, True):
            ms, peak = _measure(tf.function(fn, jit_compile=jit), seconds, peak_memory)
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


MEMORY_SOURCES = {
    "allocator": "peak MiB: TensorFlow's CPU allocator statistics",
    "resident": "peak MiB: the process's peak resident set (this machine's CPU allocator "
                "keeps no statistics), so it counts more than TensorFlow's allocations",
    "unavailable": "peak MiB: n/a, this machine has neither CPU allocator statistics "
                   "nor /proc/self/clear_refs"}


def table(results: Dict[Tuple[int, int], Dict[str, object]]) -> str:
    """Markdown: one line per cell, ms and peak MiB per row and jit mode, and
    a line saying where the peaks come from."""
    lines = ["| K rows | C classes | bank MiB | memory step ms (jit off / on) "
             "| peak MiB (off / on) | memory loss + grad ms (off / on) | peak MiB (off / on) |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for (memory, classes), r in results.items():
        cells = [f"{memory:,}", f"{classes:,}", f"{r['bank MiB']:,.0f}"]
        for name in ("memory step", "memory loss + gradient"):
            for unit, spec in (("ms", ".2f"), ("peak MiB", ",.0f")):
                off, on = ("n/a" if value is None else f"{value:{spec}}"
                           for value in (r[f"{name} | jit={jit} | {unit}"]
                                         for jit in (False, True)))
                cells.append(f"{off} / {on}")
        lines.append("| " + " | ".join(cells) + " |")
    sources = sorted({r["memory source"] for r in results.values()})
    lines += [""] + [MEMORY_SOURCES[source] for source in sources]
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
