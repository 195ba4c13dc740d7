"""Encoders: a small CNN for CPUs, or a keras.applications backbone with an embedding head."""

from typing import Optional, Sequence

import keras

SMALL_CNN = "small_cnn"


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
    `embedding_dim`. `weights` is passed to the backbone ("imagenet" needs
    the network the first time; None trains from scratch).
    """
    if name == SMALL_CNN:
        if weights is not None:
            raise ValueError(f"encoder {SMALL_CNN!r} has no pretrained weights; got {weights!r}")
        return small_cnn(input_shape, embedding_dim)
    backbone_class = getattr(keras.applications, name, None)
    if not callable(backbone_class):
        raise ValueError(f"unknown encoder {name!r}: expected {SMALL_CNN!r} or a "
                         "keras.applications model such as 'ResNet50' or 'InceptionV3'")
    backbone = backbone_class(include_top=False, weights=weights,
                              input_shape=tuple(input_shape), pooling="max")
    features = keras.layers.Dense(embedding_dim, name="embedding")(backbone.output)
    return keras.Model(backbone.input, features, name=f"{name}_embedding")
