"""CARS-98N: real label noise crawled for the 98 CARS196 training classes.

Point data.csv.data_dir at the images and data.csv.train_list /
data.csv.clean_list at the authors' lists; data.csv.test_list at the CARS196 test list (classes
99-196). No injected noise: the noise is real, and the clean list gives the
ground truth.
"""

from prism_tf.configs.paper import paper_config


def get_config():
    config = paper_config(memory_size=9500, window_size=30)
    config.data.source = "csv"
    config.data.injected_noise.kind, config.data.injected_noise.rate = "none", 0.0
    config.lock()
    return config
