"""PrismModel: a Keras model whose `train_step` trains on the clean-looking samples."""

from typing import Callable, Optional, Tuple, Union

import keras
import tensorflow as tf

from prism_tf import compat
from prism_tf.losses import MemoryContrastiveLoss, MetricLoss
from prism_tf.memory_bank import MemoryBank
from prism_tf.metrics import KeptPurity, NoiseRecall
from prism_tf.proxy_losses import ProxyLoss
from prism_tf.replicas import GlobalBatch
from prism_tf.selector import PrismSelector

LossLike = Union[MetricLoss, ProxyLoss, Callable[[tf.Tensor, tf.Tensor], tf.Tensor]]
# Batch losses that take per-sample weights (so masks work under XLA).
_WEIGHTED_LOSSES = (MetricLoss, ProxyLoss)

_TRACKED = ("loss", "batch_loss", "memory_loss", "kept_fraction", "threshold",
            "noise_estimate", "separability")
# Why a step was refused (bits of `PrismModel.failure`'s reason).
_NON_FINITE, _LABEL_RANGE, _BATCH_TOO_LARGE = 1, 2, 4
_REASONS = {
    _NON_FINITE: "non-finite embeddings, loss or gradients (NaN or Inf): check the "
                 "inputs and their normalisation (a std of 0 divides by zero)",
    _LABEL_RANGE: "labels outside [0, num_classes)",
    _BATCH_TOO_LARGE: "a batch larger than the memory bank",
}


class InvalidBatchError(ValueError):
    """A training step met data it cannot train on; nothing was updated."""


@compat.register_serializable(package="prism_tf")
class PrismModel(keras.Model):
    """Wraps an encoder; trains it with PRISM's noise-resistant step.

    `model(x)` returns L2-normalised embeddings. One training step, in the
    authors' order:

    1. z = normalise(encoder(x)).
    2. Clean probabilities and the keep mask from the memory as it was.
    3. Memory loss between z and the memory, removed samples' rows zeroed,
       divided by the batch size; with `normalize_memory_loss` also
       multiplied by B / (rows in memory).
    4. Batch loss on the kept samples; with `dropped_as_negatives` the
       dropped ones stay the kept anchors' negatives.
    5. loss = batch_loss + memory_weight * memory_loss; one gradient step.
    6. The kept samples' pre-step embeddings go into the memory.

    Before `memory_start_step` (counted in optimizer steps) the memory is
    neither used nor filled and every sample is kept. Without a selector
    every sample is always kept: the XBM baseline.

    The dataset yields Keras's (inputs, y) or (inputs, y, sample_weight).
    `y` is the labels [B], or {"labels": [B], "is_noisy": [B] bool} when the
    ground truth of wrong labels is known: then the step also reports
    `kept_purity` and `noise_recall` (`prism_tf.metrics`). Sample weights
    (float, >= 0) scale each sample's terms in the batch and memory losses
    (with a `MetricLoss` batch loss); a sample of weight 0 neither trains
    nor enters the memory.

    A step whose embeddings, loss or gradients (unless loss scaling handles
    those) are not finite, whose labels are outside
    [0, num_classes) or whose batch is larger than the memory changes
    nothing (no weight update, no memory row, no selector window entry; a
    custom batch loss that is non-finite on finite embeddings still moves
    the window), and `fit` stops right after it with an `InvalidBatchError`
    naming the step. The check writes model state, so XLA keeps it.

    Under a `tf.distribute` strategy (Mirrored, MultiWorkerMirrored, TPU)
    each replica's embeddings, labels and weights are gathered in replica
    order, so every replica selects on the global batch and writes the same
    rows into its copy of the memory (`prism_tf.replicas.GlobalBatch`); the
    memory loss is each replica's own rows against its copy. The update
    equals one device's on the same global batch (up to float rounding),
    and the logged values are the global batch's.

    `compile(loss=...)` sets the batch loss, as `batch_loss=` does; giving
    both is an error. A proxy batch loss (`prism_tf.proxy_losses`) trains
    its proxies with the model's optimizer, or with its own:
    `compile(optimizer=..., proxy_optimizer=...)`. With
    `PrismSelector(scoring="proxies")` (ProxySim) the selector scores with
    those proxies instead of the memory's class centres.

    Args:
      encoder: any Keras model or layer mapping inputs to [B, D] features.
      memory_bank: a `MemoryBank` with `dim` = D.
      selector: a `PrismSelector`, or None for no selection (XBM).
      batch_loss: a `MetricLoss` or a `ProxyLoss` (masked, works under
        XLA) or any callable (labels, embeddings) -> scalar such as a TFA
        loss (given the kept rows by boolean masking, so not under
        `jit_compile`). Default MCL.
      memory_loss: a `MetricLoss` taking a reference set. Default MCL.
      memory_weight: weight of the memory loss (0: the memory only scores
        samples, and the memory loss is neither computed nor logged).
      memory_start_step: optimizer step at which the memory starts.
      normalize_memory_loss: scale the memory loss by B / (rows in memory),
        so that a memory of any size weighs like one batch of references.
        False is the authors' sum over every row: against M rows the memory
        term is M / B times the batch term (32x for 2,048 rows), the
        memory's stale rows then set the whole gradient, and a small CNN
        trained from scratch loses most of what it learned
        (docs/BENCHMARKS.md, "The memory-loss collapse").
      dropped_as_negatives: with a `MetricLoss` batch loss, a sample the
        selector drops leaves the batch loss as an anchor and as a positive
        but stays the other anchors' negative (not in the paper, which
        leaves it out of the batch loss). What is suspect is its label:
        its positive pairs are wrong, while its negative pairs are almost
        all right (with symmetric noise over C classes, only those whose
        anchor is of its true class are wrong). Left out, its negatives
        go with it and the batch loses half its negatives at 50% noise:
        TripletSemiHard + PRISM told 50% then lost 1.5 MAP@R against no
        selection on Fashion-MNIST, and with them kept gains 1.0
        (docs/BENCHMARKS.md, "Dropped samples kept as negatives"). Other
        batch losses leave dropped samples out.

    Example:

    >>> encoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> model = PrismModel(encoder, MemoryBank(size=32, dim=3, num_classes=2),
    ...                    PrismSelector(noise_rate=0.25))
    >>> model.compile(optimizer="adam")
    >>> data = tf.data.Dataset.from_tensor_slices(
    ...     (tf.random.normal([16, 4]), tf.range(16) % 2)).batch(8)
    >>> history = model.fit(data, epochs=1, verbose=0)
    >>> sorted(history.history)[:3]
    ['batch_loss', 'kept_fraction', 'loss']
    """

    def __init__(self, encoder: keras.layers.Layer, memory_bank: MemoryBank,
                 selector: Optional[PrismSelector] = None,
                 batch_loss: Optional[LossLike] = None,
                 memory_loss: Optional[MetricLoss] = None,
                 memory_weight: float = 1.0, memory_start_step: int = 0,
                 normalize_memory_loss: bool = True, dropped_as_negatives: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        self._batch_loss_given = batch_loss is not None
        if not isinstance(memory_start_step, int) or memory_start_step < 0:
            raise ValueError(
                f"PrismModel: memory_start_step must be an integer >= 0; "
                f"got {memory_start_step!r}")
        self.encoder = encoder
        self.memory_bank = memory_bank
        self.selector = selector
        self.batch_loss = batch_loss if batch_loss is not None else MemoryContrastiveLoss()
        if selector is not None and batch_loss is not None:
            selector.attach(batch_loss)   # a scoring that cannot use it says so now
        self.memory_loss = memory_loss if memory_loss is not None else MemoryContrastiveLoss()
        if not (isinstance(memory_weight, (int, float)) and 0 <= memory_weight < float("inf")):
            raise ValueError(f"PrismModel: memory_weight must be a finite number >= 0 "
                             f"(0: the memory only scores); got {memory_weight!r}")
        self.memory_weight = float(memory_weight)
        self.memory_start_step = memory_start_step
        self.normalize_memory_loss = bool(normalize_memory_loss)
        self.dropped_as_negatives = bool(dropped_as_negatives)
        self.proxy_optimizer = None
        self._trackers = {name: keras.metrics.Mean(name=name) for name in _TRACKED}
        self._selection_metrics = [KeptPurity(), NoiseRecall()]
        self._memory_fill = keras.metrics.Mean(name="memory_fill")
        # [step counted from 1, reason bits] of the first refused step.
        self._failure = self.add_weight(
            name="failure", shape=(2,), dtype="int64", trainable=False,
            initializer="zeros")

    def compile(self, optimizer="rmsprop", loss=None, proxy_optimizer=None,
                **kwargs) -> None:
        """Keras's `compile`; `loss`, if given, becomes the batch loss, and
        `proxy_optimizer`, if given, trains a proxy batch loss's proxies."""
        if loss is not None:
            if isinstance(loss, str) or not callable(loss):
                raise TypeError(
                    "PrismModel.compile: loss must be a metric loss instance such as "
                    f"prism_tf.losses.TripletSemiHardLoss() or a TFA loss; got {loss!r}")
            if self._batch_loss_given and loss is not self.batch_loss:
                raise ValueError(
                    "PrismModel: the batch loss was given to the constructor and again "
                    "to compile(loss=...); give it once")
            self.batch_loss, self._batch_loss_given = loss, True
            if self.selector is not None:
                self.selector.attach(loss)
        if proxy_optimizer is not None:
            if not isinstance(self.batch_loss, ProxyLoss):
                raise ValueError(
                    "PrismModel.compile: proxy_optimizer trains a proxy loss's proxies; "
                    f"the batch loss {type(self.batch_loss).__name__} has none")
            proxy_optimizer = keras.optimizers.get(proxy_optimizer)
        super().compile(optimizer=optimizer, **kwargs)
        if proxy_optimizer is not None and compat.is_loss_scale_optimizer(self.optimizer):
            raise ValueError("PrismModel.compile: a proxy_optimizer under mixed precision "
                             "(a loss-scaling optimizer) is not supported")
        self.proxy_optimizer = proxy_optimizer

    def get_compile_config(self) -> Optional[dict]:
        """Keras's compile config, with the proxy optimizer (for `.keras` files)."""
        config = super().get_compile_config()
        if config is not None and self.proxy_optimizer is not None:
            config["proxy_optimizer"] = compat.serialize(self.proxy_optimizer)
        return config

    def optimizer_groups(self) -> list:
        """[(optimizer, the trainable variables it updates)]: the model's
        optimizer, and the proxy optimizer for the proxies if there is one."""
        if self.proxy_optimizer is None:
            return [(self.optimizer, self.trainable_variables)]
        proxies = {id(v) for v in self.batch_loss.trainable_variables}
        return [(self.optimizer, [v for v in self.trainable_variables if id(v) not in proxies]),
                (self.proxy_optimizer, self.batch_loss.trainable_variables)]

    def build_optimizers(self) -> None:
        """Creates the optimizers' slots for the variables each one updates."""
        for optimizer, variables in self.optimizer_groups():
            optimizer.build(variables)

    def compile_from_config(self, config: dict) -> None:
        """What `.keras` loading calls; Keras skips it for a custom `compile`."""
        self.compile(**compat.deserialize(config))
        if self.built:
            self.build_optimizers()

    def fit(self, *args, **kwargs):
        """Keras's `fit`, stopping with `InvalidBatchError` after a refused step."""
        kwargs["callbacks"] = [_StopOnInvalidBatch()] + list(kwargs.get("callbacks") or [])
        return super().fit(*args, **kwargs)

    def _maybe_symbolic_build(self, *args, **kwargs):
        # Keras 3 builds a model under a strategy from the replicas' first
        # batch averaged by `strategy.reduce`, which a multi-worker strategy
        # cannot do for a nested batch (keras-team/keras#20585). The
        # encoder, memory and selector are built already; the first step
        # builds the rest.
        if not compat.across_workers(self.distribute_strategy):
            super()._maybe_symbolic_build(*args, **kwargs)

    def train_on_batch(self, *args, **kwargs):
        """Keras's `train_on_batch`, raising `InvalidBatchError` if the step
        was refused. (A loop of its own reads `failure_message()`.)"""
        self.failure.assign([0, 0])
        logs = super().train_on_batch(*args, **kwargs)
        message = self.failure_message()
        if message:
            raise InvalidBatchError(message)
        return logs

    @property
    def failure(self) -> tf.Variable:
        """[step counted from 1, reason bits] of the first refused step; reason 0: none."""
        return compat.tf_variable(self._failure)

    def failure_message(self) -> Optional[str]:
        """What went wrong at the first refused step, or None."""
        step, reason = (int(v) for v in self.failure.numpy())
        if not reason:
            return None
        why = "; ".join(text for bit, text in _REASONS.items() if reason & bit)
        return (f"PrismModel: training step {step} refused: {why}. Nothing was updated "
                "by that step; the weights and memory are those of the step before.")

    @property
    def metrics(self) -> list:
        return list(self._trackers.values()) + self._selection_metrics + [self._memory_fill]

    def call(self, inputs, training=False) -> tf.Tensor:
        features = tf.cast(self.encoder(inputs, training=training), tf.float32)
        return tf.math.l2_normalize(features, axis=-1)

    def train_step(self, data) -> dict:
        inputs, labels, is_noisy, sample_weight = _unpack(data)
        self._check_parts(sample_weight)
        # Under tf.distribute each replica holds its rows of the global batch.
        # Selection, batch loss and the memory's update see the whole batch,
        # gathered in the same order on every replica (so all of them write
        # the same rows); the memory loss takes each replica's own rows.
        global_batch = GlobalBatch(tf.size(labels))
        all_labels, labels_ok, fits = self._checked_labels(global_batch.gather(labels))
        labels = global_batch.own_rows(all_labels)
        memory_on = self.optimizer.iterations >= self.memory_start_step
        with tf.GradientTape() as tape:
            z = self(inputs, training=True)
            all_z = global_batch.gather(z)
            z_finite = tf.reduce_all(tf.math.is_finite(all_z))
            if self.selector is None:
                weight, values = tf.ones_like(all_labels, tf.float32), {}
            else:
                weight, values = self.selector(
                    tf.stop_gradient(z), labels, self.memory_bank, gather=global_batch.gather,
                    active=memory_on, advance=labels_ok & fits & z_finite)
            keep = weight > 0
            values["kept_fraction"] = tf.reduce_mean(weight)
            # The data's own weights, on every pair (the selector's only on some).
            given = (tf.ones_like(weight) if sample_weight is None
                     else global_batch.gather(sample_weight))
            weight *= given
            loss, own_loss = self._step_loss(global_batch, all_labels, all_z, labels, z, keep,
                                          weight, given, memory_on, values)
            scaled_loss = compat.scale_loss(self.optimizer, own_loss)
        finite = z_finite & tf.math.is_finite(loss)
        reason = (tf.where(labels_ok, 0, _LABEL_RANGE) + tf.where(fits, 0, _BATCH_TOO_LARGE))
        self._apply_unless_refused(tape, scaled_loss, global_batch, finite, reason,
                                   tf.stop_gradient(all_z), all_labels, (weight > 0) & memory_on)
        values["loss"] = loss
        return self._step_logs(values, keep, is_noisy, global_batch)

    def _check_parts(self, sample_weight) -> None:
        """Refuses, while tracing, parts that cannot work together."""
        if sample_weight is not None and not isinstance(self.batch_loss, _WEIGHTED_LOSSES):
            raise ValueError("PrismModel: sample weights need a MetricLoss or ProxyLoss "
                             f"batch loss; {type(self.batch_loss).__name__} takes no weights")
        if self.selector is not None:
            self.selector.attach(self.batch_loss)

    def _checked_labels(self, all_labels: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(labels clipped to [0, C), whether they were in range, whether the
        batch fits the memory). Out-of-range labels would be gathered and
        scattered before the loss, so the step's own ops get clipped ones;
        the step is refused anyway."""
        if all_labels.shape[0] is not None and all_labels.shape[0] > self.memory_bank.size:
            raise ValueError(
                f"PrismModel: a batch of {all_labels.shape[0]} samples does not fit a "
                f"memory of {self.memory_bank.size} rows")
        num_classes = self.memory_bank.num_classes
        labels_ok = tf.reduce_all((all_labels >= 0) & (all_labels < num_classes))
        fits = tf.size(all_labels) <= self.memory_bank.size
        return tf.clip_by_value(all_labels, 0, num_classes - 1), labels_ok, fits

    def _step_loss(self, global_batch: GlobalBatch, all_labels, all_z, labels, z, keep, weight,
                   given_weight, memory_on, values: dict) -> Tuple[tf.Tensor, tf.Tensor]:
        """(the step's loss, what this replica differentiates); puts the
        batch and memory losses into `values`.

        The optimizer sums the replicas' gradients, and the gathered rows'
        gradient is already summed over replicas: terms every replica
        computes alike are divided by their number, so the step equals one
        device's."""
        batch = tf.cast(tf.size(all_labels), tf.float32)
        loss = values["batch_loss"] = self._batch_loss(all_labels, all_z, keep, weight,
                                                        given_weight)
        own_loss = loss / global_batch.replicas
        # Weight 0: the memory only scores samples; skip the [B, K] loss.
        if self.memory_weight:
            own_memory_loss = tf.cond(
                memory_on, lambda: self._memory_loss(
                    labels, z, global_batch.own_rows(weight), batch),
                lambda: tf.constant(0.0))
            values["memory_loss"] = global_batch.sum(tf.stop_gradient(own_memory_loss))
            loss += self.memory_weight * values["memory_loss"]
            own_loss += self.memory_weight * own_memory_loss
        if self.losses:
            regularization = tf.add_n(self.losses)
            loss += regularization
            own_loss += regularization / global_batch.replicas
        return loss, own_loss

    def _apply_unless_refused(self, tape: tf.GradientTape, scaled_loss, global_batch,
                              finite, reason, all_z, all_labels, enqueue_mask) -> None:
        """Applies the gradients and fills the memory, unless the step is
        refused (`reason` bits, or anything non-finite): then nothing
        changes and `failure` records the first such step."""
        groups = self.optimizer_groups()
        gradients = compat.unscale_gradients(self.optimizer, tape.gradient(
            scaled_loss, [v for _, variables in groups for v in variables]))
        # A NaN input can give finite embeddings (ReLU maps NaN to 0) and NaN
        # gradients. Under loss scaling, non-finite gradients are the loss
        # scale optimizer's to skip, so they are not checked there.
        if not compat.is_loss_scale_optimizer(self.optimizer):
            own_finite = tf.reduce_all(
                [tf.reduce_all(tf.math.is_finite(g)) for g in gradients if g is not None])
            # Every replica's gradients: all replicas must refuse together.
            not_finite = global_batch.sum(tf.cast(tf.logical_not(own_finite), tf.float32))
            finite &= tf.equal(not_finite, 0.0)
        reason += tf.where(finite, 0, _NON_FINITE)
        # Once a step is refused, later ones in the same call refuse too.
        none_refused_yet = tf.equal(self.failure[1], 0)
        ok = tf.logical_and(tf.equal(reason, 0), none_refused_yet)
        for optimizer, variables in groups:
            compat.apply_gradients_if(ok, optimizer, gradients[:len(variables)], variables)
            gradients = gradients[len(variables):]
        # In a tf.cond, so the bank's own size check cannot fire on a refused batch.
        tf.cond(ok, lambda: self._enqueue(all_z, all_labels, enqueue_mask),
                lambda: tf.constant(False))
        first_failure = tf.logical_and(tf.not_equal(reason, 0), none_refused_yet)
        self.failure.assign(tf.where(
            first_failure,
            tf.stack([tf.cast(self.optimizer.iterations, tf.int64) + 1,
                      tf.cast(reason, tf.int64)]),
            self.failure))

    def _step_logs(self, values: dict, keep, is_noisy, global_batch: GlobalBatch) -> dict:
        """The step's logs: the tracked means, the selection's purity and
        recall where the ground truth came, and the memory's fill."""
        # Every value is the global batch's, the same on every replica, so
        # Keras's reduction across replicas leaves it as it is.
        for name, value in values.items():
            self._trackers[name].update_state(value)
        logs = {name: self._trackers[name].result() for name in values}
        if is_noisy is not None:
            all_is_noisy = global_batch.gather(is_noisy)
            for metric in self._selection_metrics:
                metric.update_state(keep, all_is_noisy)
                logs[metric.name] = metric.result()
        # The newest fill, through a metric reset every step: Keras 2 sums a
        # step's plain tensor outputs over the replicas.
        self._memory_fill.reset_state()
        self._memory_fill.update_state(self.memory_bank.fill_fraction())
        logs["memory_fill"] = self._memory_fill.result()
        return compat.step_logs(self.distribute_strategy, logs)

    def test_step(self, data) -> dict:
        inputs, labels, _, _ = _unpack(data)
        z = self(inputs, training=False)
        self._trackers["loss"].update_state(self.batch_loss(labels, z))
        return {"loss": self._trackers["loss"].result()}

    def label_scores(self, embeddings, labels) -> Tuple[tf.Tensor, tf.Tensor]:
        """The selector's (p_clean [B], label_rank [B]) of embeddings as
        `model(x)` gives them, from the memory (or the proxies) as they are."""
        self.selector.attach(self.batch_loss)
        return self.selector.scores(embeddings, labels, self.memory_bank)

    def _memory_loss(self, labels: tf.Tensor, z: tf.Tensor, weight: tf.Tensor,
                     batch: tf.Tensor) -> tf.Tensor:
        occupied = self.memory_bank.occupied()
        loss = self.memory_loss(labels, z, sample_weight=weight,
                                ref_embeddings=self.memory_bank.embeddings,
                                ref_labels=self.memory_bank.labels, ref_weight=occupied)
        # The loss averages over kept anchors; PRISM divides by the batch.
        # `batch` is the global one: on several replicas each has its own
        # anchors, and their sum is the global batch's loss (exactly so for
        # losses that average over anchors, as MCL).
        loss *= tf.reduce_sum(weight) / batch
        if self.normalize_memory_loss:
            rows = tf.reduce_sum(tf.cast(occupied, tf.float32))
            loss *= batch / tf.maximum(rows, 1.0)
        return loss

    def _enqueue(self, z: tf.Tensor, labels: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        self.memory_bank.enqueue(z, labels, mask=mask)
        return tf.constant(True)

    def _batch_loss(self, labels: tf.Tensor, z: tf.Tensor, keep: tf.Tensor,
                    weight: tf.Tensor, given_weight: tf.Tensor) -> tf.Tensor:
        if isinstance(self.batch_loss, MetricLoss) and self.dropped_as_negatives:
            return self.batch_loss(labels, z, sample_weight=weight,
                                   negative_sample_weight=given_weight)
        if isinstance(self.batch_loss, _WEIGHTED_LOSSES):
            return self.batch_loss(labels, z, sample_weight=weight)
        return self.batch_loss(tf.boolean_mask(labels, keep), tf.boolean_mask(z, keep))

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "encoder": compat.serialize(self.encoder),
            "memory_bank": compat.serialize(self.memory_bank),
            "selector": compat.serialize(self.selector) if self.selector else None,
            "batch_loss": compat.serialize(self.batch_loss),
            "memory_loss": compat.serialize(self.memory_loss),
            "memory_weight": self.memory_weight,
            "memory_start_step": self.memory_start_step,
            "normalize_memory_loss": self.normalize_memory_loss,
            "dropped_as_negatives": self.dropped_as_negatives,
        }

    @classmethod
    def from_config(cls, config: dict) -> "PrismModel":
        config = dict(config)
        for key in ("encoder", "memory_bank", "selector", "batch_loss", "memory_loss"):
            if config.get(key) is not None:
                config[key] = compat.deserialize(config[key])
        return cls(**config)


class _StopOnInvalidBatch(keras.callbacks.Callback):
    """Raises `InvalidBatchError` at the end of the batch whose step was refused."""

    def on_train_begin(self, logs=None):
        self.model.failure.assign([0, 0])

    def on_train_batch_end(self, batch, logs=None):
        message = self.model.failure_message()
        if message:
            raise InvalidBatchError(message)


def _unpack(data):
    """(inputs, labels int32 [B], is_noisy bool [B] or None, sample_weight
    float [B] or None) from a dataset element."""
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
        raise ValueError(
            "PrismModel: the dataset must yield (inputs, y) or (inputs, y, sample_weight), "
            "y being the labels or {'labels': ..., 'is_noisy': ...}; got "
            f"{type(data).__name__} of length "
            f"{len(data) if isinstance(data, (tuple, list)) else 1}")
    target, is_noisy = data[1], None
    if isinstance(target, dict):
        if set(target) - {"labels", "is_noisy"} or "labels" not in target:
            raise ValueError("PrismModel: y as a dict takes 'labels' and optionally "
                             f"'is_noisy'; got keys {sorted(target)}")
        target, is_noisy = target["labels"], target.get("is_noisy")
    labels = tf.reshape(tf.cast(target, tf.int32), [-1])
    if is_noisy is not None:
        is_noisy = tf.reshape(tf.cast(is_noisy, tf.bool), [-1])
    sample_weight = data[2] if len(data) == 3 else None
    if sample_weight is not None:
        if tf.as_dtype(sample_weight.dtype) == tf.bool:
            # The old (inputs, labels, is_noisy) element would be read as weights.
            raise ValueError(
                "PrismModel: the third element is boolean; ground-truth noise flags go "
                "in y = {'labels': ..., 'is_noisy': ...}, and sample weights are floats")
        sample_weight = tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
    return data[0], labels, is_noisy, sample_weight
