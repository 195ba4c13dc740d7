"""CUB-200-2011 (TFDS caltech_birds2011): classes 1-100 train, 101-200 test."""

from prism_tf.configs.paper import paper_config


def get_config():
    config = paper_config()
    config.data.source, config.data.tfds.name = "tfds", "caltech_birds2011"
    config.lock()
    return config
