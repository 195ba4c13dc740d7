"""Built-in synthetic images, 50% symmetric noise, small CNN: minutes on 2 CPU cores.

    python -m pipelines.train --config=configs/default.py --workdir=/tmp/prism
"""

from prism_tf.configs.base import base_config


def get_config():
    config = base_config()
    config.data.injected_noise.kind, config.data.injected_noise.rate = "symmetric", 0.5
    config.lock()
    return config
