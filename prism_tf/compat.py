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

    Under a `tf.distribute` strategy it is called in each replica's step,
    with that replica's gradients (the optimizer sums them) and a condition
    that is the same on every replica.

    The optimizer is built first, outside the step: its slot variables cannot
    be created inside a conditional branch. Keras 2 marks a built optimizer
    `_built`, Keras 3 `built`.
    """
    if not (optimizer.built if KERAS_3 else getattr(optimizer, "_built", False)):
        # Created outside the traced step: under a strategy TF cannot lift
        # the initialisers of variables made inside it.
        with tf.init_scope():
            optimizer.build(variables)

    def apply():
        optimizer.apply_gradients(zip(gradients, variables))
        return tf.constant(True)

    if not tf.distribute.has_strategy():
        tf.cond(condition, apply, lambda: tf.constant(False))
        return
    # Under a strategy `apply_gradients` synchronises the replicas
    # (merge_call), one replica too, which TF refuses inside a tf.cond in
    # replica context; so the cond runs in cross-replica context, as Keras's
    # LossScaleOptimizer does.
    # `condition` must be the same on every replica: the first one's decides.
    pairs = [(g, v) for g, v in zip(gradients, variables) if g is not None]
    options = {}
    if not KERAS_3:
        # Keras 2 sums over replicas here, in replica context, and is told
        # not to again inside the branch.
        pairs, options = optimizer.aggregate_gradients(pairs), {"skip_gradients_aggregation": True}

    def in_cross_replica_context(strategy, condition, grads):
        def apply_on_each_replica():
            strategy.extended.call_for_each_replica(
                lambda grads: optimizer.apply_gradients(
                    zip(grads, [v for _, v in pairs]), **options), args=(grads,))
            return tf.constant(True)

        tf.cond(strategy.experimental_local_results(condition)[0],
                apply_on_each_replica, lambda: tf.constant(False))

    tf.distribute.get_replica_context().merge_call(in_cross_replica_context,
                       args=(condition, [g for g, _ in pairs]))


def across_workers(strategy: tf.distribute.Strategy) -> bool:
    """Whether some of `strategy`'s replicas run in other processes (a
    MultiWorkerMirroredStrategy over several workers)."""
    replicas = strategy.num_replicas_in_sync
    return replicas > 1 and replicas > len(strategy.extended.worker_devices)


def step_logs(strategy: tf.distribute.Strategy, logs: dict) -> dict:
    """A `train_step`'s logs, the same on every replica, as `fit` reduces them.

    Only a multi-worker strategy needs a change. Keras 3's fit averages a
    step's logs there with `strategy.reduce("MEAN", value, axis=0)`, which
    fails on scalars (keras-team/keras#20585): each log gets a leading axis
    of 1, and the reduction returns the scalar again. Keras 2's fit sums
    them over the replicas: each log is divided by their number.
    """
    if not across_workers(strategy):
        return logs
    if KERAS_3:
        return {name: tf.reshape(value, [1]) for name, value in logs.items()}
    return {name: value / strategy.num_replicas_in_sync for name, value in logs.items()}
