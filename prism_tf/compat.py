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


def is_loss_scale_optimizer(optimizer) -> bool:
    """Whether `optimizer` scales the loss (mixed precision)."""
    return isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer)


def scale_loss(optimizer, loss: tf.Tensor) -> tf.Tensor:
    """The loss a custom `train_step` differentiates, inside its tape.

    Under mixed precision the optimizer is a LossScaleOptimizer, and a custom
    step must scale the loss itself (identity for other optimizers).
    """
    if KERAS_3:
        return optimizer.scale_loss(loss)
    if is_loss_scale_optimizer(optimizer):
        return optimizer.get_scaled_loss(loss)
    return loss


def unscale_gradients(optimizer, gradients: list) -> list:
    """Gradients ready for `apply_gradients` after `scale_loss`.

    Keras 3's LossScaleOptimizer unscales inside `apply_gradients`; Keras 2's
    wants them unscaled first.
    """
    if not KERAS_3 and is_loss_scale_optimizer(optimizer):
        return optimizer.get_unscaled_gradients(gradients)
    return gradients


def apply_gradients_if(condition: tf.Tensor, optimizer, gradients: list,
                       variables: list) -> None:
    """Applies the gradients (and counts the step) only where `condition` holds.

    The optimizer is built first: its slot variables cannot be created inside
    a conditional branch. Keras 2 marks a built optimizer `_built`, Keras 3
    `built`.
    """
    if not (optimizer.built if KERAS_3 else getattr(optimizer, "_built", False)):
        optimizer.build(variables)

    def apply():
        optimizer.apply_gradients(zip(gradients, variables))
        return tf.constant(True)

    tf.cond(condition, apply, lambda: tf.constant(False))
