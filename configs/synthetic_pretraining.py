"""Pretraining for the CPU-sized pretrained regime (docs/BENCHMARKS.md).

    python -m pipelines.train --config=configs/synthetic_pretraining.py \
        --workdir=runs/synthetic-pretraining

The synthetic "pretraining" family (200 classes of shape, texture and
texture frequency, each image in its own colours; clean labels),
TripletSemiHard, evaluated on the built-in synthetic test classes, which
colour tells apart. `configs/noise_benchmark.py:pretrained` fine-tunes from
this run on the synthetic training classes with noisy labels.
"""

from prism_tf.configs.base import base_config


def get_config():
    config = base_config()
    config.data.synthetic.family = "pretraining"
    config.loss.name = "triplet_semihard"
    config.loss.triplet_semihard.margin = 0.5   # the benchmark recipe's (TFA's default: 1.0)
    config.selector.noise_rate = 0.0
    config.train.steps = 1000
    config.train.eval_every = 500
    config.lock()
    return config
