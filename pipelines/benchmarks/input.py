r"""Benchmark: input pipeline images/second against what a train step consumes.

    python -m pipelines.benchmarks.input --source=synthetic --image_size=32
    python -m pipelines.benchmarks.input --source=jpeg --image_size=224

`synthetic` reads the built-in classes from memory; `jpeg` first writes
`--files` random 320 x 256 JPEGs to a temp folder and reads them as an image
folder (decode, random resized crop, flip, normalise). Both feed P x K
batches. The consumer row times `PrismModel.train_on_batch` on the same
batches with `prism_tf.encoders.small_cnn`, so the two rates can be
compared in one run.
"""

import tempfile
from pathlib import Path

from absl import app, flags
import numpy as np
import tensorflow as tf

from .common import time_per_call
from prism_tf import MemoryBank, PrismModel, PrismSelector
from prism_tf.data import image_folder, synthetic
from prism_tf.data.pipeline import Preprocessing, train_dataset
from prism_tf.encoders import small_cnn

FLAGS = flags.FLAGS
flags.DEFINE_enum("source", "synthetic", ["synthetic", "jpeg"], "What to read.")
flags.DEFINE_integer("image_size", 32, "Model input size.")
flags.DEFINE_integer("files", 400, "JPEG files to write for --source=jpeg.")
flags.DEFINE_integer("batches", 40, "Batches timed.")
flags.DEFINE_integer("classes_per_batch", 16, "P.")
flags.DEFINE_integer("samples_per_class", 4, "K.")


def _write_jpegs(root: Path, count: int, classes: int = 20) -> None:
    rng = np.random.default_rng(0)
    for i in range(count):
        folder = root / f"class_{i % classes:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, (256, 320, 3), dtype=np.uint8)
        (folder / f"{i}.jpg").write_bytes(tf.io.encode_jpeg(pixels, quality=90).numpy())


def _images_per_second(iterator, batches: int, step=None) -> float:
    step = step or (lambda batch: batch)
    warm_up = next(iterator)  # tracing, first fill of the prefetch buffer
    step(warm_up)  # compiles the train step
    return int(warm_up[0].shape[0]) / time_per_call(lambda: step(next(iterator)), batches)


def main(argv):
    del argv
    preprocessing = Preprocessing(image_size=FLAGS.image_size)
    with tempfile.TemporaryDirectory() as tmp:
        if FLAGS.source == "jpeg":
            _write_jpegs(Path(tmp), FLAGS.files)
            split = image_folder(tmp)
        else:
            split = synthetic("train")
        data = train_dataset(split, FLAGS.classes_per_batch, FLAGS.samples_per_class,
                             preprocessing, seed=0)
        produced = _images_per_second(iter(data), FLAGS.batches)
        model = PrismModel(small_cnn((FLAGS.image_size, FLAGS.image_size,
                                      preprocessing.for_split(split).channels)),
                           MemoryBank(4096, 64, split.num_classes), PrismSelector(0.5))
        model.compile(optimizer="adam")
        consumed = _images_per_second(
            iter(data), FLAGS.batches,
            lambda batch: model.train_on_batch(*batch))
    print(f"source={FLAGS.source} image_size={FLAGS.image_size} "
          f"batch={FLAGS.classes_per_batch}x{FLAGS.samples_per_class}")
    print(f"| input pipeline alone | {produced:.0f} images/s |")
    print(f"| pipeline + small-CNN train step | {consumed:.0f} images/s |")


if __name__ == "__main__":
    app.run(main)
