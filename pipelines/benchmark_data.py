"""Random inputs the speed benchmarks share."""

import numpy as np

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
