"""Encoders: a small CNN for CPUs, or a keras.applications backbone with an
embedding head; and starting an encoder from saved weights."""

from pathlib import Path
from typing import Optional, Sequence

import keras
import tensorflow as tf


SMALL_CNN = "small_cnn"
IMAGENET = "imagenet"


def small_cnn(input_shape: Sequence[int], embedding_dim: int = 64) -> keras.Model:
    """Two conv blocks and a linear head; trains in seconds on a CPU."""
    return keras.Sequential([
        keras.Input(tuple(input_shape)),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(embedding_dim),
    ], name=SMALL_CNN)


def build_encoder(name: str, input_shape: Sequence[int], embedding_dim: int,
                  weights: Optional[str] = None) -> keras.Model:
    """`small_cnn`, or any `keras.applications` model by class name.

    A backbone gets PRISM's head: global max pooling and a linear layer to
    `embedding_dim`. `weights`: None trains from scratch; "imagenet" (a
    backbone only) downloads Keras's file the first time; a path to a local
    weights file (`.h5` or `.weights.h5`) loads it: for a backbone, Keras's
    file of the backbone without its top (e.g. `resnet50_weights_tf_dim_
    ordering_tf_kernels_notop.h5`), for `small_cnn` a file its
    `save_weights` wrote.

    Raises:
      FileNotFoundError: `weights` is a path that does not exist.
      ValueError: the file does not fit the encoder (its message names the
        file and Keras's reason, e.g. a shape mismatch).
    """
    if weights is not None and weights != IMAGENET and not Path(weights).is_file():
        raise FileNotFoundError(f"encoder weights: no file {weights!r}")
    if name == SMALL_CNN:
        if weights == IMAGENET:
            raise ValueError(f"encoder {SMALL_CNN!r} has no ImageNet weights; give a "
                             "weights file it saved, or none")
        encoder = small_cnn(input_shape, embedding_dim)
        if weights is not None:
            _load_weights_file(encoder, weights)
        return encoder
    backbone_class = getattr(keras.applications, name, None)
    if not callable(backbone_class):
        raise ValueError(f"unknown encoder {name!r}: expected {SMALL_CNN!r} or a "
                         "keras.applications model such as 'ResNet50' or 'InceptionV3'")
    backbone = backbone_class(include_top=False,
                              weights=IMAGENET if weights == IMAGENET else None,
                              input_shape=tuple(input_shape), pooling="max")
    if weights not in (None, IMAGENET):
        _load_weights_file(backbone, weights)
    features = keras.layers.Dense(embedding_dim, name="embedding")(backbone.output)
    return keras.Model(backbone.input, features, name=f"{name}_embedding")


def _load_weights_file(model: keras.Model, path: str) -> None:
    try:
        model.load_weights(path)
    except (ValueError, KeyError, OSError) as error:
        # Keras's message goes on to print the variable's values: cut there.
        reason = " ".join(str(error).split(", dtype=")[0].split())
        raise ValueError(f"encoder weights {path!r} do not fit encoder {model.name!r}: "
                         f"{reason}") from None


def copy_encoder_weights(source: Sequence[tf.Variable], encoder: keras.Model,
                         origin: str) -> None:
    """Sets `encoder`'s weights to `source`'s values, in `encoder.variables`
    order (fine-tuning from another run's encoder).

    Raises:
      ValueError: the counts or a shape differ; the message names `origin`
        and the first variable that does not fit.

    >>> encoder = small_cnn((8, 8, 1), 4)
    >>> copy_encoder_weights(small_cnn((8, 8, 1), 4).variables, encoder, "a twin")
    >>> copy_encoder_weights(small_cnn((8, 8, 3), 4).variables, encoder, "an RGB twin")
    Traceback (most recent call last):
    ...
    ValueError: an RGB twin does not fit the encoder: variable 0 has shape (3, 3, 3, 32) there and (3, 3, 1, 32) here
    """
    targets = encoder.variables
    if len(source) != len(targets):
        raise ValueError(f"{origin} does not fit the encoder: it has {len(source)} "
                         f"variables, the encoder {len(targets)} (another architecture)")
    for index, (value, target) in enumerate(zip(source, targets)):
        if tuple(value.shape) != tuple(target.shape):
            raise ValueError(
                f"{origin} does not fit the encoder: variable {index} has shape "
                f"{tuple(value.shape)} there and {tuple(target.shape)} here")
    for value, target in zip(source, targets):
        target.assign(tf.convert_to_tensor(value))

