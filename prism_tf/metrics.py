"""How well PRISM's selection matches the ground truth, as Keras metrics.

Both take the keep mask of a batch and the ground-truth flags of wrong
labels, and pool over the batches since the last reset (the ratio of the
sums, not the mean of per-batch ratios).

>>> purity, recall = KeptPurity(), NoiseRecall()
>>> keep, is_noisy = [True, True, False, False], [False, True, True, True]
>>> purity.update_state(keep, is_noisy); recall.update_state(keep, is_noisy)
>>> float(purity.result()), round(float(recall.result()), 4)
(0.5, 0.6667)
"""

import keras
import tensorflow as tf

from prism_tf import compat


class _PooledRatio(keras.metrics.Metric):
    """sum(numerator) / sum(denominator) over the batches seen (0 if empty)."""

    def __init__(self, name: str, **kwargs):
        super().__init__(name=name, **kwargs)
        self._numerator = self.add_weight(name="numerator", initializer="zeros")
        self._denominator = self.add_weight(name="denominator", initializer="zeros")

    def _counts(self, keep: tf.Tensor, is_noisy: tf.Tensor):
        raise NotImplementedError

    def update_state(self, keep, is_noisy, sample_weight=None) -> None:
        if sample_weight is not None:
            raise ValueError(f"{self.name}: counts samples; sample_weight is not supported")
        keep = tf.reshape(tf.cast(keep, tf.bool), [-1])
        is_noisy = tf.reshape(tf.cast(is_noisy, tf.bool), [-1])
        numerator, denominator = self._counts(keep, is_noisy)
        compat.tf_variable(self._numerator).assign_add(numerator)
        compat.tf_variable(self._denominator).assign_add(denominator)

    def result(self) -> tf.Tensor:
        return tf.math.divide_no_nan(tf.convert_to_tensor(self._numerator),
                                     tf.convert_to_tensor(self._denominator))

    def reset_state(self) -> None:
        for variable in (self._numerator, self._denominator):
            compat.tf_variable(variable).assign(0.0)


def _count(mask: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(tf.cast(mask, tf.float32))


@compat.register_serializable(package="prism_tf")
class KeptPurity(_PooledRatio):
    """Share of the kept samples whose label is right."""

    def __init__(self, name: str = "kept_purity", **kwargs):
        super().__init__(name=name, **kwargs)

    def _counts(self, keep, is_noisy):
        return _count(keep & ~is_noisy), _count(keep)


@compat.register_serializable(package="prism_tf")
class NoiseRecall(_PooledRatio):
    """Share of the wrong labels that were removed."""

    def __init__(self, name: str = "noise_recall", **kwargs):
        super().__init__(name=name, **kwargs)

    def _counts(self, keep, is_noisy):
        return _count(~keep & is_noisy), _count(is_noisy)
