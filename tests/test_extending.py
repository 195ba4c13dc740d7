"""docs/EXTENDING.md's examples, run as written."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = (ROOT / "docs" / "EXTENDING.md").read_text()


def _example(section: str) -> str:
    start = GUIDE.index(f"## {section}")
    end = GUIDE.find("\n## ", start + 1)
    [block] = re.findall(r"```python\n(.*?)```", GUIDE[start:end if end >= 0 else None],
                         flags=re.S)
    return block


def test_every_example_is_run_by_a_test():
    assert len(re.findall(r"```python\n", GUIDE)) == 1


@pytest.mark.parametrize("jit_compile", [False, True])
def test_the_scoring_example_selects_and_trains_a_model(tmp_path, jit_compile):
    # In its own process: the example registers a scoring for good.
    script = _example("A scoring") + f"""
import keras
from prism_tf import PrismModel
encoder = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
model = PrismModel(encoder, MemoryBank(32, 2, 2), PrismSelector(0.25, scoring="nearest"))
model.compile(optimizer="adam", jit_compile={jit_compile})
data = tf.data.Dataset.from_tensor_slices(
    (tf.random.normal([32, 2]), tf.range(32) % 2)).batch(8)
history = model.fit(data, epochs=2, verbose=0)
print("kept", history.history["kept_fraction"][-1])
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "[1. 0.]"
    assert 0.5 <= float(lines[-1].split()[1]) < 1.0   # 0.25 of a batch of 8 dropped
