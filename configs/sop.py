"""Stanford Online Products (TFDS): the official class-disjoint splits."""

from prism_tf.configs.paper import paper_config


def get_config():
    config = paper_config()
    config.data.source, config.data.tfds.name = "tfds", "stanford_online_products"
    config.sampling.samples_per_class = 2   # SOP has ~5 images per class
    config.lock()
    return config
