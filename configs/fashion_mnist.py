"""Fashion-MNIST (train split with injected noise, retrieval on the test split).

Reads the IDX files from data.fashion_mnist.data_dir, Debian's dataset-fashion-mnist or
the Keras cache.
"""

from prism_tf.configs.base import base_config


def get_config():
    config = base_config()
    config.data.source = "fashion_mnist"
    config.preprocessing.image_size = 28
    config.preprocessing.crop_scale = (0.6, 1.0)
    config.preprocessing.mean, config.preprocessing.std = (0.286,), (0.353,)
    config.sampling.samples_per_class = 8     # 10 classes: P = 8 per batch
    config.train.steps = 800
    config.memory.size = 8192
    config.data.injected_noise.kind, config.data.injected_noise.rate = "symmetric", 0.5
    config.lock()
    return config
