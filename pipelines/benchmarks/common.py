"""What the benchmarks share: random inputs, a timer, mean ± std cells."""

import time
from typing import Callable, List

import numpy as np
import tensorflow as tf

from prism_tf import MemoryBank


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """`n` random L2-normalised float32 rows."""
    x = rng.normal(size=(n, dim)).astype("float32")
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def filled_bank(rng: np.random.Generator, size: int, dim: int, classes: int,
                chunk: int = 4096) -> MemoryBank:
    """A memory bank whose every row holds a random unit vector and label."""
    bank = MemoryBank(size, dim, classes)
    for start in range(0, size, chunk):
        n = min(chunk, size - start)
        bank.enqueue(unit_rows(rng, n, dim), rng.integers(0, classes, n))
    return bank


def time_per_call(fn: Callable[[], object], iterations: int) -> float:
    """Seconds per call over `iterations` calls, waiting for the last result
    (tensors are fetched; other values are already there). The one timer of
    the speed benchmarks."""
    start = time.perf_counter()
    for _ in range(iterations):
        result = fn()
    tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, result)
    return (time.perf_counter() - start) / iterations


def mean_std(values: List[float]) -> str:
    """A table cell: mean ± std over seeds or runs, "-" when there is none."""
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if values else "-"
