"""Your own images with clean labels: a folder of class folders, or CSV lists.

    python -m pipelines.train --config=configs/own_data.py --workdir=runs/mine \
        --config.data.folder.data_dir=/path/to/images

`data_dir` holds one folder per class (`data.source=folder`); the first half
of the classes (sorted by name) trains and the rest is the retrieval test,
unless `data.folder.test_dir` names a folder of test classes. For CSV lists
set `--config.data.source=csv --config.data.csv.data_dir=/path/to/images
--config.data.csv.train_list=train.csv --config.data.csv.test_list=test.csv`
(names and the paths inside them relative to data_dir).

No label noise is injected and PRISM is off: the recipe that did best
from scratch in docs/BENCHMARKS.md (TripletSemiHard on P x K batches, no
memory loss). If your labels are noisy, turn PRISM on with your estimate of
the wrong share: `--config.selector.noise_rate=0.2`.
Images are resized to 64 x 64 with flips off (right for text, logos and
digits; `--config.preprocessing.flip=True` for natural images).
"""

from prism_tf.configs.base import base_config


def get_config():
    config = base_config()
    config.data.source = "folder"
    config.preprocessing.image_size = 64
    config.preprocessing.flip = False
    config.loss.name = "triplet_semihard"
    config.loss.triplet_semihard.margin = 0.5   # the benchmark recipe's (TFA's default: 1.0)
    config.selector.noise_rate = 0.0   # no selection
    config.train.steps = 2000
    config.train.eval_every = 500
    config.train.learning_rate = 3e-4   # the benchmark recipe's
    config.lock()
    return config
