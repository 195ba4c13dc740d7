"""What the pipelines check before any work: config values, named by key."""

import math
from pathlib import Path
from typing import Tuple

import ml_collections
import numpy as np
import tensorflow as tf

from prism_tf import losses, selector
from prism_tf.data import ImageSplit
from prism_tf.data.noise import NOISE_KINDS
from prism_tf.data.registry import SOURCES
from prism_tf.encoders import IMAGENET

from .factories import STRATEGIES


class ConfigError(ValueError):
    """A config value that cannot work, named by its key."""


def check_config(config: ml_collections.ConfigDict) -> None:
    """Raises `ConfigError` naming the key for values that cannot work."""
    def need(ok: bool, key: str, expected: str) -> None:
        if not ok:
            value = config
            for part in key.split("."):
                value = value[part]
            raise ConfigError(f"config.{key} = {value!r}: expected {expected}")

    for key, value in leaves(config.to_dict()):
        numbers = value if isinstance(value, (tuple, list)) else (value,)
        if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
            raise ConfigError(f"config.{key} = {value!r}: expected finite numbers")
    data, preprocessing = config.data, config.preprocessing
    need(data.source in SOURCES and data.source in data, "data.source",
         f"one of {sorted(SOURCES)}, with its options under config.data.<source>")
    need(isinstance(data.seed, int) and data.seed >= 0, "data.seed", "an integer >= 0")
    need(data.source != "folder" or bool(data.folder.data_dir), "data.folder.data_dir",
         "the folder of your class folders (data.source = 'folder')")
    need(data.injected_noise.kind in NOISE_KINDS, "data.injected_noise.kind",
         f"one of {NOISE_KINDS}")
    need(0.0 <= data.injected_noise.rate < 1.0, "data.injected_noise.rate", "a rate in [0, 1)")
    need(all(v > 0 for v in preprocessing.std), "preprocessing.std",
         "values > 0 (they divide the pixels)")
    need(preprocessing.eval_resize >= 1.0, "preprocessing.eval_resize",
         "a factor >= 1 (the centre crop cannot be larger than the resized image)")
    crop_scale = preprocessing.crop_scale
    need(len(crop_scale) == 2 and 0.0 < crop_scale[0] <= crop_scale[1] <= 1.0,
         "preprocessing.crop_scale", "(low, high) area shares with 0 < low <= high <= 1")
    need(not preprocessing.mean or not preprocessing.std
         or len(preprocessing.mean) == len(preprocessing.std), "preprocessing.std",
         f"as many values as preprocessing.mean ({len(preprocessing.mean)})")
    for name, value in config.selector.items():
        expected = selector.argument_problem(name, value)
        need(expected is None, f"selector.{name}", expected)
    need(config.train.steps > 0, "train.steps", "a positive number of steps")
    need(config.train.strategy in STRATEGIES, "train.strategy", f"one of {STRATEGIES}")
    need(config.train.connect_timeout_s > 0, "train.connect_timeout_s",
         "a positive number of seconds")
    need(config.train.eval_every > 0, "train.eval_every", "a positive number of steps")
    need(config.train.scalars_every > 0, "train.scalars_every", "a positive number of steps")
    need(0.0 < config.train.learning_rate <= 1.0, "train.learning_rate",
         "a learning rate in (0, 1]")
    need(config.eval.batch_size > 0, "eval.batch_size", "a positive batch size")
    need(len(config.eval.recall_at) > 0 and all(
        isinstance(k, int) and k >= 1 for k in config.eval.recall_at), "eval.recall_at",
        "integers >= 1, e.g. (1, 2, 4, 8)")
    need(config.train.batch_size > 0, "train.batch_size", "a positive batch size")
    samples_per_class = config.sampling.samples_per_class
    need(samples_per_class >= 2 or not _compares_pairs(config.loss.name),
         "sampling.samples_per_class", "at least 2: the pair and triplet losses learn from "
         "two images of a class in a batch (one is enough for the proxy losses)")
    need(samples_per_class > 0 and config.train.batch_size % samples_per_class == 0,
         "train.batch_size", f"a multiple of sampling.samples_per_class ({samples_per_class})")
    need(config.memory.weight >= 0, "memory.weight", "a weight >= 0 (0: the memory only "
         "scores)")
    need(config.memory.size >= config.train.batch_size, "memory.size",
         f"at least train.batch_size ({config.train.batch_size})")
    loss_names = sorted(losses.LOSSES)
    need(config.loss.name in loss_names and config.loss.name in config.loss, "loss.name",
         f"one of {loss_names}, with its arguments under config.loss.<name>")
    need(0.0 < config.train.proxy_learning_rate <= 1.0, "train.proxy_learning_rate",
         "a learning rate in (0, 1]")
    model = config.model
    need(not (model.init_from and model.weights), "model.init_from",
         f"'' when model.weights is set ({model.weights!r}): start from one or the other")


def _compares_pairs(loss_name: str) -> bool:
    """Whether the loss learns from pairs of one class's images (a metric
    loss; a proxy loss compares each image with its proxies)."""
    return issubclass(losses.LOSSES.get(loss_name, losses.MetricLoss), losses.MetricLoss)


def check_encoder_start(config: ml_collections.ConfigDict) -> None:
    """Raises `ConfigError` unless the encoder's starting weights
    (`model.weights`, `model.init_from`) are there. Only a run that starts
    needs them: a resumed one starts from its own checkpoint."""
    model = config.model
    if not (model.weights in ("", IMAGENET) or Path(model.weights).is_file()):
        raise ConfigError(f"config.model.weights = {model.weights!r}: expected '', "
                          f"{IMAGENET!r} or an existing weights file (.h5 / .weights.h5)")
    if model.init_from and not Path(model.init_from).is_dir():
        raise ConfigError(f"config.model.init_from = {model.init_from!r}: expected '' or an "
                          "existing training workdir or export folder")


def leaves(tree: dict, prefix: str = ""):
    """(dotted key, value) of every value of a nested dict."""
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def check_evaluation_split(split: ImageSplit, recall_at: Tuple[int, ...]) -> None:
    """Raises `ConfigError` unless some label of `split` has 2 or more items
    (leave-one-out retrieval has nothing to find otherwise) and every
    Recall@K looks at fewer than all the other items (at all of them it is
    1.0 whatever the embeddings)."""
    if len(split) < 2 or np.bincount(split.labels).max() < 2:
        raise ConfigError(f"the evaluation split {split.name} has no class with 2 or more "
                          "images: retrieval cannot be scored on it")
    if max(recall_at) >= len(split) - 1:
        raise ConfigError(f"config.eval.recall_at = {tuple(recall_at)!r}: expected values "
                          f"below {len(split) - 1}, the other images of each query in "
                          f"{split.name} (Recall@K over all of them is 1.0 by definition)")


def check_batch_splits(config: ml_collections.ConfigDict,
                       strategy: tf.distribute.Strategy) -> None:
    """Raises `ConfigError` unless `train.batch_size` splits evenly across
    the strategy's replicas (each takes an equal share of the global batch)."""
    replicas = strategy.num_replicas_in_sync
    if config.train.batch_size % replicas:
        raise ConfigError(
            f"config.train.batch_size = {config.train.batch_size}: expected a multiple of "
            f"the {replicas} replicas of train.strategy = {config.train.strategy!r} (the "
            "global batch is split evenly across them)")
