"""Input side: image sources, label noise and tf.data pipelines."""

from prism_tf.data.noise import (NOISE_KINDS, NoiseReport, NoisyLabels, inject_noise,
                                 inject_small_cluster_noise, inject_symmetric_noise)
from prism_tf.data.registry import SOURCES, load_source
from prism_tf.data.sources import (DataError, ImageSplit, csv_list, fashion_mnist,
                                   image_folder, split_classes, synthetic, tfds_dataset)

__all__ = [
    "NOISE_KINDS", "NoiseReport", "NoisyLabels", "inject_noise", "inject_small_cluster_noise",
    "inject_symmetric_noise", "DataError", "ImageSplit", "csv_list", "fashion_mnist",
    "image_folder", "split_classes", "synthetic", "tfds_dataset", "SOURCES", "load_source",
]
