"""Export an encoder as a versioned SavedModel for TF Serving.

Two signatures:
- `serving_default`: float images [N, S, S, C], preprocessed as in training
  evaluation, -> L2-normalised embeddings [N, D].
- `embed_encoded`: JPEG/PNG bytes [N] -> decode, evaluation preprocessing
  (resize, centre crop, normalise) -> the same embeddings. Malformed bytes
  make the call fail with InvalidArgumentError; the server keeps running.

A version is written to a hidden temporary folder beside it and renamed into
`export_dir/<version>` only when complete, so TF Serving, which watches
`export_dir`, never sees a half-written version.
"""

import os
import shutil
from pathlib import Path
from typing import Optional

import keras
import tensorflow as tf

from prism_tf.data.pipeline import Preprocessing


class _Embedder(tf.Module):
    def __init__(self, encoder: keras.Model, preprocessing: Preprocessing, channels: int):
        super().__init__()
        self.encoder = encoder
        self.preprocessing = preprocessing
        self.channels = channels
        size = preprocessing.image_size
        self.embed = tf.function(self._embed, input_signature=[
            tf.TensorSpec([None, size, size, channels], tf.float32, name="images")])
        self.embed_encoded = tf.function(self._embed_encoded, input_signature=[
            tf.TensorSpec([None], tf.string, name="encoded_images")])

    def _embed(self, images):
        features = tf.cast(self.encoder(images, training=False), tf.float32)
        return {"embeddings": tf.math.l2_normalize(features, axis=-1)}

    def _embed_encoded(self, encoded_images):
        size = self.preprocessing.image_size

        def prepare(data):
            image = tf.io.decode_image(data, channels=self.channels, expand_animations=False)
            return self.preprocessing.eval_view(image)

        images = tf.map_fn(prepare, encoded_images, fn_output_signature=tf.TensorSpec(
            [size, size, self.channels], tf.float32))
        return self._embed(images)


def next_version(export_dir: Path) -> int:
    """One more than the highest integer version folder (1 if none)."""
    versions = [int(p.name) for p in export_dir.glob("*") if p.name.isdigit()]
    return max(versions, default=0) + 1


def export_saved_model(encoder: keras.Model, export_dir: str, preprocessing: Preprocessing,
                       channels: int, version: Optional[int] = None) -> Path:
    """Writes `export_dir/<version>` atomically and returns its path.

    Raises FileExistsError, writing nothing, if that version exists.
    """
    export_dir = Path(export_dir)
    export_dir.mkdir(parents=True, exist_ok=True)
    version = next_version(export_dir) if version is None else int(version)
    final = export_dir / str(version)
    if final.exists():
        raise FileExistsError(f"{final} exists; versions are never overwritten")
    temporary = export_dir / f".tmp-{version}-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    module = _Embedder(encoder, preprocessing, channels)
    try:
        tf.saved_model.save(module, str(temporary), signatures={
            "serving_default": module.embed, "embed_encoded": module.embed_encoded})
        temporary.rename(final)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return final
