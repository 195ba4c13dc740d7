"""README commands and snippets, run as written."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from prism_tf import MemoryBank, PrismModel, PrismSelector
from prism_tf.data.pipeline import Preprocessing
from prism_tf.encoders import small_cnn
from prism_tf.export import export_saved_model
from tests import markdown, serving
from tests.markdown import python_blocks, shell_blocks

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    return markdown.section(README, title)


@pytest.fixture
def served(tmp_path):
    """A folder as the README's serving commands expect it (models/prism/1,
    a.jpg, b.png) and TF Serving's ports 8500 (gRPC) / 8501 (REST) answering
    from the export through a TF1 session."""
    model = PrismModel(small_cnn((16, 16, 3), 8), MemoryBank(32, 8, 4), PrismSelector(0.5))
    preprocessing = Preprocessing(image_size=16, channels=3)
    export_saved_model(model.encoder, str(tmp_path / "models" / "prism"), preprocessing)
    pixels = np.random.default_rng(0).integers(0, 255, (2, 30, 24, 3), dtype=np.uint8)
    (tmp_path / "a.jpg").write_bytes(tf.io.encode_jpeg(pixels[0]).numpy())
    (tmp_path / "b.png").write_bytes(tf.io.encode_png(pixels[1]).numpy())
    expected = model.predict(np.stack([preprocessing.eval_view(tf.io.decode_image(
        (tmp_path / name).read_bytes(), channels=3)).numpy() for name in ("a.jpg", "b.png")]),
        verbose=0)
    with serving.tf1_loaded(tmp_path / "models" / "prism" / "1") as predict:
        with serving.grpc_server(predict, "prism", port=8500), \
                serving.rest_server(predict, "prism", port=8501):
            yield tmp_path, expected


def _bash(script: str, cwd: Path) -> subprocess.CompletedProcess:
    # `python` is this environment's, as after `. .venv/bin/activate`.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_serving_recipe_runs_as_written(served):
    folder, expected = served
    text = section("Serving with TF Serving")
    blocks = shell_blocks(text)
    # The export and tensorflow_model_server lines need a run and TF Serving's
    # binary; the fixture stands in for both.
    assert "tensorflow_model_server" in blocks[0]
    curl_encoded, curl_floats, client = blocks[1:4]

    for curl in (curl_encoded, curl_floats):
        result = _bash(curl, folder)
        assert result.returncode == 0, result.stderr[-2000:]
        np.testing.assert_allclose(json.loads(result.stdout)["predictions"], expected[:1],
                                   atol=1e-5)

    result = _bash(client, folder)
    assert result.returncode == 0, result.stderr[-2000:]
    rest, grpc, serving_default = result.stdout.strip().splitlines()
    for line in (rest, grpc):
        assert json.loads(line)["shape"] == [2, 8]
        np.testing.assert_allclose(json.loads(line)["embeddings"], expected, atol=1e-5)
    body = json.loads(serving_default)
    with serving.tf1_loaded(folder / "models" / "prism" / "1") as predict:
        answer = predict(body["signature_name"], serving.inputs_from_rest(body))
    np.testing.assert_allclose(answer, expected[:1], atol=1e-5)

    [snippet] = python_blocks(text)
    script = snippet + "\nimport numpy as np; np.save('grpc.npy', embeddings)\n"
    result = _bash(f"python - <<'EOF'\n{script}\nEOF", folder)
    assert result.returncode == 0, result.stderr[-2000:]
    np.testing.assert_allclose(np.load(folder / "grpc.npy"), expected[:1], atol=1e-5)


def test_the_search_recipe_runs_as_written(tmp_path):
    from configs import default
    from pipelines.train import train
    from prism_tf.search import GalleryIndex
    from tests import data_helpers

    text = section("Search a gallery")
    index_and_export, curl = shell_blocks(text)
    # As written, on a run of the default config cut to 4 steps and a gallery
    # folder this test made.
    config = default.get_config()
    config.train.steps, config.train.eval_every = 4, 4
    train(config, str(tmp_path / "runs" / "default"), verbose=0)
    data_helpers.image_folder(tmp_path / "gallery", images_per_class=(2, 3))
    data_helpers.write_image(tmp_path / "a.jpg", seed=99)
    result = _bash(index_and_export, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    index = GalleryIndex.load(tmp_path / "runs" / "default" / "index")
    assert len(index) == 5 and index.paths[0].startswith("gallery/class_0/")
    with serving.tf1_loaded(tmp_path / "models" / "prism" / "1") as predict, \
            serving.rest_server(predict, "prism", port=8501):
        expected = predict("search_encoded", {"encoded_images": np.array(
            [(tmp_path / "a.jpg").read_bytes()], object)}, None)
        result = _bash(curl, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    [answer] = json.loads(result.stdout)["predictions"]
    assert answer["rows"] == expected["rows"][0].tolist() and len(answer["rows"]) == 5
    assert answer["paths"] == [p.decode() for p in expected["paths"][0]]
    assert answer["paths"][0] == index.paths[answer["rows"][0]]
    np.testing.assert_allclose(answer["scores"], expected["scores"][0], atol=1e-6)

    [snippet] = python_blocks(text)
    result = _bash(f"python - <<'EOF'\n{snippet}\nEOF", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 5 and lines[0].split()[0] == "1"
    assert float(lines[0].split()[1]) == pytest.approx(0.0, abs=1e-5)   # itself


def test_every_python_snippet_is_run_by_a_test():
    # The serving snippet runs in test_the_serving_recipe_runs_as_written, the
    # own config in test_the_own_config_snippet_trains_from_any_folder, the
    # TFLite one in test_the_tflite_snippet_embeds_as_the_export, the search
    # one in test_the_search_recipe_runs_as_written, the "Use" snippets
    # below; a new snippet must join one of them.
    assert len(python_blocks(README)) == len(python_blocks(section("Use"))) + 4


def test_the_tflite_snippet_embeds_as_the_export(tmp_path):
    text = section("On devices: TensorFlow Lite")
    [command] = shell_blocks(text)
    assert command.split() == ["python", "-m", "pipelines.export", "--workdir=runs/default",
                               "--export_dir=models/prism", "--tflite"]
    encoder = small_cnn((32, 32, 3), 8)
    export_saved_model(encoder, str(tmp_path / "models" / "prism"),
                       Preprocessing(image_size=32, channels=3), tflite=True)
    [snippet] = python_blocks(text)
    script = snippet + "\nnp.save('images.npy', images); np.save('tflite.npy', embeddings)\n"
    result = _bash(f"python - <<'EOF'\n{script}\nEOF", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    with serving.tf1_loaded(tmp_path / "models" / "prism" / "1") as predict:
        expected = predict("serving_default", {"images": np.load(tmp_path / "images.npy")})
    np.testing.assert_allclose(np.load(tmp_path / "tflite.npy"), expected, atol=1e-5)


def test_the_own_config_snippet_trains_from_any_folder(tmp_path):
    from tests import data_helpers

    [snippet] = python_blocks(section("Install and run"))
    (tmp_path / "my_config.py").write_text(snippet)
    command = snippet.splitlines()[0].split(":", 1)[1].strip()
    assert command == "prism-tf-train --config=my_config.py --workdir=runs/mine"
    data_helpers.image_folder(tmp_path / "images", images_per_class=(4,) * 8)
    # As written, but on images this test made and for 2 steps; from a folder
    # outside the checkout, through the installed module name.
    result = _bash(f"python -m prism_tf.pipelines.train {command.split(' ', 1)[1]} "
                   f"--config.data.folder.data_dir={tmp_path / 'images'} --config.train.steps=2 "
                   "--config.train.eval_every=2 --config.train.batch_size=8 "
                   "--config.memory.size=64 --verbose=0", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "runs" / "mine" / "metrics.json").read_text())
    assert metrics["step"] == 2 and np.isfinite(metrics["precision_at_1"])
    assert "kept_purity" not in metrics   # a folder's labels: no ground truth


def test_the_use_snippets_run_one_after_the_other(tmp_path):
    script = "\n".join(python_blocks(section("Use")))
    script += "\nimport numpy as np\nassert embeddings.shape == (256, 64)\n"
    script += "assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)\n"
    result = _bash(f"python - <<'EOF'\n{script}\nEOF", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "NoiseReport(kind='symmetric'" in result.stdout
