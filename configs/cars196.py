"""CARS196 (TFDS cars196): classes 1-98 train, 99-196 test; 50% symmetric noise."""

from prism_tf.configs.paper import paper_config


def get_config():
    config = paper_config()
    config.data.source, config.data.tfds.name = "tfds", "cars196"
    config.lock()
    return config
