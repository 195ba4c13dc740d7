"""docs/EXTENDING.md's examples, run as written."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.markdown import python_blocks, section, shell_blocks

ROOT = Path(__file__).resolve().parents[1]
GUIDE = (ROOT / "docs" / "EXTENDING.md").read_text()


def _example(title: str) -> str:
    [block] = python_blocks(section(GUIDE, title))
    return block


def _run_as_a_user(command: str, folder: Path) -> subprocess.CompletedProcess:
    """One of the guide's commands, run as a user runs it from `folder`: the
    config module there importable, the pipelines' commands on PATH; it must
    succeed."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(folder),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=folder, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_every_example_is_run_by_a_test():
    assert len(python_blocks(GUIDE)) == 3


@pytest.mark.parametrize("jit_compile", [False, True])
def test_the_scoring_example_selects_and_trains_a_model(tmp_path, jit_compile):
    # In its own process: the example registers a scoring for good.
    script = _example("A scoring: how the selector scores a sample against each class") + f"""
import keras
from prism_tf import PrismModel
keras.utils.set_random_seed(0)
encoder = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
# No guard: random points give the memory nothing to rank by, and the
# guard would keep every sample.
model = PrismModel(encoder, MemoryBank(32, 2, 2),
                   PrismSelector(0.25, scoring="nearest", max_noise_estimate=1.0))
model.compile(optimizer="adam", jit_compile={jit_compile})
data = tf.data.Dataset.from_tensor_slices(
    (tf.random.stateless_normal([32, 2], seed=[0, 1]), tf.range(32) % 2)).batch(8)
history = model.fit(data, epochs=2, verbose=0)
print("kept", history.history["kept_fraction"][0])
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "[1. 0.]"
    # The first epoch: its first step drops 2 of 8 by rank (an empty memory
    # scores every label 1), so its mean stays below 1. (Later epochs may keep
    # everyone: smooth top-R keeps all samples above an older, lower window.)
    assert 0.5 <= float(lines[-1].split()[1]) < 1.0


def test_the_batch_loss_example_trains_and_evaluates_from_its_config(tmp_path):
    (tmp_path / "my_config.py").write_text(_example("A batch loss"))
    train_command, evaluate_command = shell_blocks(section(GUIDE, "A batch loss"))
    _run_as_a_user(train_command, tmp_path)
    evaluated = _run_as_a_user(evaluate_command, tmp_path)
    config = json.loads((tmp_path / "runs" / "cosine" / "config.json").read_text())
    assert config["loss"]["name"] == "cosine_margin"
    assert config["loss"]["cosine_margin"] == {"margin": 0.7}
    trained = json.loads((tmp_path / "runs" / "cosine" / "metrics.json").read_text())
    assert json.loads(evaluated.stdout)["precision_at_1"] == pytest.approx(
        trained["precision_at_1"], abs=1e-6)


def test_the_data_source_example_trains_from_its_config(tmp_path):
    from prism_tf.data.synthetic import make_synthetic_images

    images, labels = make_synthetic_images(num_classes=32, images_per_class=8, seed=3)
    np.savez(tmp_path / "images.npz", images=images, labels=labels * 10)   # any label values
    (tmp_path / "npz_config.py").write_text(_example("A data source"))
    [command] = shell_blocks(section(GUIDE, "A data source"))
    _run_as_a_user(command, tmp_path)
    config = json.loads((tmp_path / "runs" / "npz" / "config.json").read_text())
    assert config["data"]["source"] == "npz"
    assert config["data"]["npz"] == {"path": "images.npz"}
    data = json.loads((tmp_path / "runs" / "npz" / "data.json").read_text())
    assert (data["train"]["classes"], data["train"]["samples"]) == (16, 128)
    assert (data["test"]["name"], data["test"]["samples"]) == ("npz/test", 128)
    metrics = json.loads((tmp_path / "runs" / "npz" / "metrics.json").read_text())
    assert metrics["step"] == 20 and 0.0 < metrics["precision_at_1"] <= 1.0
