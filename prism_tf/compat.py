"""The few places where Keras 2 (TF 2.15, legacy stack) and Keras 3 differ.

Library code imports Keras through this module's helpers wherever the two
major versions disagree, so the rest of the package is written once.
"""

import keras
import tensorflow as tf

KERAS_3 = int(keras.__version__.split(".", 1)[0]) >= 3

register_serializable = keras.saving.register_keras_serializable
serialize = keras.saving.serialize_keras_object
deserialize = keras.saving.deserialize_keras_object


def tf_variable(weight) -> tf.Variable:
    """Returns the `tf.Variable` behind a Keras weight.

    Keras 3 wraps every weight in a backend-neutral `keras.Variable`; the
    in-place scatter ops the memory bank needs live on the `tf.Variable`
    inside it. Keras 2 weights already are `tf.Variable`s.
    """
    return weight.value if KERAS_3 else weight
