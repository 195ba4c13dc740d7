"""The PRISM authors' recipe, shared by the CARS, CUB, SOP and CARS-98N configs.

BN-Inception is not in keras.applications; InceptionV3 with global max
pooling and a 512-d linear head stands in. ImageNet weights need the
network on first use (`--config.model.weights=""` trains from scratch).
"""

from prism_tf.configs.base import base_config


def paper_config(memory_size: int = 8192, window_size: int = 30):
    config = base_config()
    config.preprocessing.image_size = 224
    config.preprocessing.crop_scale = (0.2, 1.0)
    config.model.encoder = "InceptionV3"
    config.model.embedding_dim = 512
    config.model.weights = "imagenet"
    config.train.steps = 4000
    config.train.batch_size = 64
    config.train.learning_rate = 3e-5
    config.train.eval_every = 500
    config.selector.window_size = window_size
    config.memory.weight = 1.0
    config.memory.size = memory_size
    # The authors' scale: the memory loss summed over all rows (see
    # PrismModel's normalize_memory_loss for why the other configs normalise).
    config.memory.normalize = False
    # The authors' batch loss leaves a dropped sample out altogether.
    config.loss.dropped_as_negatives = False
    # The paper's synthetic-noise experiments; CARS-98N sets none (real noise).
    config.data.injected_noise.kind, config.data.injected_noise.rate = "symmetric", 0.5
    return config
