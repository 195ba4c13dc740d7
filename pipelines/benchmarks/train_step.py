r"""Benchmark: what PRISM adds to a full training step with a real encoder.

    python -m pipelines.benchmarks.train_step --encoder=ResNet50 --image_size=224

Three PrismModels on the same encoder architecture and batch, timed
interleaved in one run (median of the repetitions), `jit_compile` off and on:
- batch loss only: MCL on the batch, no memory loss, no selection;
- MCL without selection: batch + memory MCL (XBM);
- MCL + PRISM: the same with clean-sample selection.
The memory is full from the start (random rows), so every step pays for
the memory loss and the selection at their steady-state size.
"""

from typing import Dict, List

from absl import app, flags
import keras
import numpy as np
import tensorflow as tf

from .common import filled_bank, time_per_call
from prism_tf import PrismModel, PrismSelector
from prism_tf.encoders import build_encoder

FLAGS = flags.FLAGS
VARIANTS = {
    "batch loss only": dict(memory_weight=0.0, selection=False),
    "MCL, no selection (XBM)": dict(memory_weight=1.0, selection=False),
    "MCL + PRISM": dict(memory_weight=1.0, selection=True),
}


def _define_flags() -> None:
    flags.DEFINE_string("encoder", "ResNet50", "small_cnn or a keras.applications class.")
    flags.DEFINE_integer("image_size", 224, "Input size.")
    flags.DEFINE_integer("batch", 64, "Batch size (16 classes x 4).")
    flags.DEFINE_integer("classes", 98, "Classes C (CARS training half).")
    flags.DEFINE_integer("memory", 8192, "Memory rows K.")
    flags.DEFINE_integer("dim", 512, "Embedding width D.")
    flags.DEFINE_integer("steps", 3, "Timed steps per repetition.")
    flags.DEFINE_integer("repetitions", 3, "Interleaved repetitions; the median is kept.")


def _model(variant: Dict, jit_compile: bool) -> PrismModel:
    encoder = build_encoder(FLAGS.encoder, (FLAGS.image_size, FLAGS.image_size, 3), FLAGS.dim)
    bank = filled_bank(np.random.default_rng(0), FLAGS.memory, FLAGS.dim, FLAGS.classes)
    model = PrismModel(encoder, bank, PrismSelector(0.5) if variant["selection"] else None,
                       memory_weight=variant["memory_weight"])
    model.compile(optimizer=keras.optimizers.Adam(1e-4), jit_compile=jit_compile)
    return model


def main(argv):
    del argv
    rng = np.random.default_rng(1)
    images = tf.constant(rng.random((FLAGS.batch, FLAGS.image_size, FLAGS.image_size, 3),
                                    np.float32))
    labels = tf.constant(np.repeat(rng.choice(FLAGS.classes, FLAGS.batch // 4, replace=False), 4))
    models = {(name, jit): _model(variant, jit)
              for name, variant in VARIANTS.items() for jit in (False, True)}
    for model in models.values():
        model.train_on_batch(images, labels)  # trace and compile
    times: Dict[tuple, List[float]] = {key: [] for key in models}
    for _ in range(FLAGS.repetitions):
        for key, model in models.items():
            times[key].append(time_per_call(lambda: model.train_on_batch(images, labels),
                                            FLAGS.steps))
    print(f"encoder={FLAGS.encoder} image_size={FLAGS.image_size} batch={FLAGS.batch} "
          f"C={FLAGS.classes} K={FLAGS.memory} D={FLAGS.dim}")
    print("| step | jit_compile | s/step | x batch loss only (same jit_compile) |")
    print("| --- | --- | ---: | ---: |")
    for (name, jit), values in times.items():
        base = np.median(times[("batch loss only", jit)])
        print(f"| {name} | {jit} | {np.median(values):.3f} | {np.median(values) / base:.3f} |")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
