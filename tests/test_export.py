import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from prism_tf import MemoryBank, PrismModel, PrismSelector
from prism_tf.data.pipeline import Preprocessing
from prism_tf.encoders import small_cnn
from prism_tf.export import export_saved_model

PRE = Preprocessing(image_size=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = PrismModel(small_cnn((16, 16, 3), 8), MemoryBank(32, 8, 4), PrismSelector(0.5))
    export_dir = tmp_path_factory.mktemp("export")
    path = export_saved_model(model.encoder, str(export_dir), PRE, channels=3)
    return model, export_dir, path


def _pngs(n=3, size=(20, 18)):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (n, *size, 3), dtype=np.uint8)
    return pixels, [tf.io.encode_png(p).numpy() for p in pixels]


def test_versions_are_numbered_and_never_overwritten(exported):
    model, export_dir, path = exported
    assert path == export_dir / "1" and (path / "saved_model.pb").exists()
    assert not [p for p in export_dir.iterdir() if p.name.startswith(".tmp")]
    second = export_saved_model(model.encoder, str(export_dir), PRE, channels=3)
    assert second.name == "2"
    with pytest.raises(FileExistsError, match="never overwritten"):
        export_saved_model(model.encoder, str(export_dir), PRE, channels=3, version=1)


def test_fresh_process_loads_it_and_matches_keras(exported, tmp_path):
    model, _, path = exported
    pixels, encoded = _pngs()
    images = np.stack([PRE.eval_view(tf.constant(p)).numpy() for p in pixels])
    expected = model.predict(images, verbose=0)
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "encoded.npy", np.array(encoded, dtype=object), allow_pickle=True)
    script = textwrap.dedent(f"""
        import numpy as np, tensorflow as tf
        loaded = tf.saved_model.load({str(path)!r})
        images = np.load({str(tmp_path / 'images.npy')!r})
        encoded = np.load({str(tmp_path / 'encoded.npy')!r}, allow_pickle=True)
        a = loaded.signatures["serving_default"](images=tf.constant(images))["embeddings"]
        b = loaded.signatures["embed_encoded"](encoded_images=tf.constant(list(encoded)))["embeddings"]
        np.save({str(tmp_path / 'a.npy')!r}, a.numpy()); np.save({str(tmp_path / 'b.npy')!r}, b.numpy())
        try:
            loaded.signatures["embed_encoded"](encoded_images=tf.constant([b"not an image"]))
            print("NO ERROR")
        except tf.errors.InvalidArgumentError:
            print("BAD BYTES REFUSED")
        """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "BAD BYTES REFUSED" in result.stdout
    np.testing.assert_allclose(np.load(tmp_path / "a.npy"), expected, atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "b.npy"), expected, atol=1e-5)


def test_saved_model_cli_shows_both_signatures(exported):
    _, _, path = exported
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    result = subprocess.run([cli, "show", "--dir", str(path), "--all"], capture_output=True,
                            text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "signature_def['serving_default']" in result.stdout
    assert "signature_def['embed_encoded']" in result.stdout
    assert "(-1, 16, 16, 3)" in result.stdout and "embeddings" in result.stdout
