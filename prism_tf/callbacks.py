"""Keras callbacks for PRISM training runs: checkpoints and retrieval evaluation."""

import json
from typing import Dict, Optional, Sequence

import keras
import tensorflow as tf

from prism_tf.evaluation import as_graph, embed_dataset, retrieval_metrics


class CheckpointAtEpochEnd(keras.callbacks.Callback):
    """Saves a `tf.train.CheckpointManager` at every epoch end.

    The checkpoint holds whatever the manager tracks (for PrismModel: the
    encoder, optimizer, memory bank and selector window), the epoch's logs
    if it tracks a string variable `epoch_logs`, and [[step, P@1], ...] of
    every evaluation so far if it tracks a string variable
    `precision_at_1_history` (the logs need `val_precision_at_1`, which
    `RetrievalEvaluation` adds when it runs first). TensorFlow writes
    the checkpoint files first and the index of checkpoints last, so a run
    killed mid-save resumes from the previous checkpoint.
    """

    def __init__(self, manager: tf.train.CheckpointManager):
        super().__init__()
        self.manager = manager

    def on_epoch_end(self, epoch: int, logs: Optional[Dict] = None) -> None:
        # A checkpoint with an `epoch_logs` string variable keeps the epoch's
        # logs with it, so they are exactly those of the saved state.
        epoch_logs = getattr(self.manager.checkpoint, "epoch_logs", None)
        if epoch_logs is not None:
            epoch_logs.assign(json.dumps({name: float(value)
                                          for name, value in (logs or {}).items()}))
        history = getattr(self.manager.checkpoint, "precision_at_1_history", None)
        if history is not None and "val_precision_at_1" in (logs or {}):
            entries = json.loads(history.numpy().decode() or "[]")
            entries.append([int(self.model.optimizer.iterations.numpy()),
                            float(logs["val_precision_at_1"])])
            history.assign(json.dumps(entries))
        self.manager.save(checkpoint_number=int(self.model.optimizer.iterations.numpy()))


class RetrievalEvaluation(keras.callbacks.Callback):
    """Embeds an evaluation set at every epoch end and adds retrieval metrics.

    The metrics go into the epoch logs as `val_<metric>` (so History,
    TensorBoard and the progress bar see them) and are kept in `self.last`.
    """

    def __init__(self, dataset: tf.data.Dataset, recall_at: Sequence[int] = (1, 2, 4, 8)):
        super().__init__()
        self.dataset, self.recall_at = dataset, tuple(recall_at)
        self.last: Dict[str, float] = {}
        self._embed = None   # traced at the first evaluation of the model set

    def set_model(self, model: keras.Model) -> None:
        super().set_model(model)
        self._embed = None

    def evaluate(self) -> Dict[str, float]:
        if self._embed is None:
            self._embed = as_graph(lambda images: self.model(images, training=False),
                                   self.dataset.element_spec[0])
        embeddings, labels = embed_dataset(self._embed, self.dataset)
        self.last = retrieval_metrics(embeddings, labels, self.recall_at)
        return self.last

    def on_epoch_end(self, epoch: int, logs: Optional[Dict] = None) -> None:
        metrics = self.evaluate()
        if logs is not None:
            logs.update({f"val_{name}": value for name, value in metrics.items()
                         if name != "num_queries"})


class StepTensorBoard(keras.callbacks.TensorBoard):
    """Keras's TensorBoard callback with epoch scalars at the optimizer step.

    Keras plots `epoch_*` scalars against the epoch index while histograms
    and images (and any `tf.summary` written with the step) use the optimizer
    step; with both on steps, one x axis serves every plot, and a resumed run
    continues it. Every scalar carries its description (`scalar_description`).
    The epoch's scalars are flushed at once (the writers would hold them up
    to two minutes), so a checkpoint saved after this callback never has
    scalars that a kill could lose.
    """

    def on_epoch_end(self, epoch: int, logs: Optional[Dict] = None) -> None:
        super().on_epoch_end(int(self.model.optimizer.iterations.numpy()), logs)
        for writer in (self._train_writer, self._val_writer):
            writer.flush()

    def _log_epoch_metrics(self, epoch: int, logs: Optional[Dict]) -> None:
        # Keras's own, with a description on every tag (`scalar_description`).
        train = self._collect_learning_rate(
            {name: value for name, value in (logs or {}).items() if not name.startswith("val_")})
        val = {name[4:]: value for name, value in (logs or {}).items()
               if name.startswith("val_")}
        for writer, values in ((self._train_writer, train), (self._val_writer, val)):
            if values:
                with writer.as_default(), tf.summary.record_if(True):
                    for name, value in values.items():
                        tf.summary.scalar(f"epoch_{name}", value, step=epoch,
                                          description=scalar_description(name))


# What each scalar means, shown under its plot in TensorBoard.
SCALAR_DESCRIPTIONS = {
    "loss": "The total loss: batch loss plus memory_weight x memory loss.",
    "batch_loss": "The metric loss on the batch's kept samples.",
    "memory_loss": "The loss of the kept samples against the memory bank (XBM), "
                   "0 before memory_start_step.",
    "kept_fraction": "Share of each batch the selector kept (1: nothing dropped).",
    "threshold": "The selector's threshold: the clean probability at or below which "
                 "(told rates), or the label rank above which (noise_rate=auto), samples "
                 "were dropped.",
    "noise_estimate": "The selector's estimate of the share of wrong labels, from the "
                      "memory's label ranks (no ground truth used).",
    "separability": "How well the memory tells clean labels from wrong ones: their "
                    "estimated ROC AUC; below selector.min_separability every sample is "
                    "kept.",
    "memory_fill": "Share of the memory bank's slots that hold a row.",
    "kept_purity": "Share of the kept samples whose label is right (ground truth).",
    "noise_recall": "Share of the wrong labels that were dropped (ground truth).",
    "learning_rate": "The optimizer's learning rate.",
    "precision_at_1": "Leave-one-out retrieval on the evaluation split: the nearest "
                      "neighbour has the query's label.",
    "r_precision": "Leave-one-out retrieval: same-label items among the R nearest, over R.",
    "map_at_r": "Leave-one-out retrieval: MAP@R (Musgrave et al.).",
}


def scalar_description(name: str) -> str:
    """The description of a logged scalar (`SCALAR_DESCRIPTIONS`; Recall@K
    and any other name get a generic one)."""
    if name.startswith("recall_at_"):
        return (f"Leave-one-out retrieval: any of the {name[len('recall_at_'):]} nearest "
                "neighbours has the query's label.")
    return SCALAR_DESCRIPTIONS.get(name, f"`{name}` as the model's step logs it.")


class StepScalars(keras.callbacks.Callback):
    """The model's logged metrics every `every` optimizer steps, with their
    descriptions, in `log_dir` (a TensorBoard run of its own).

    Each point is the mean over the steps since the one before (or since
    the epoch began, as Keras resets the metrics then): read from the
    metrics' two state variables (a Mean's total and count, a pooled
    ratio's numerator and denominator), so nothing runs in the step.
    Metrics reset every step (`memory_fill`) give their newest value.
    """

    def __init__(self, log_dir: str, every: int = 10):
        super().__init__()
        if every < 1:
            raise ValueError(f"StepScalars: every={every}: expected a positive number of steps")
        self.log_dir, self.every = log_dir, int(every)
        self.writer = None
        self._previous: Dict[str, tuple] = {}

    def on_train_begin(self, logs=None) -> None:
        if self.writer is None:
            self.writer = tf.summary.create_file_writer(self.log_dir)
        self._previous = {}

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self._previous = {}   # Keras has just reset the metrics

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        step = int(self.model.optimizer.iterations.numpy())
        if step % self.every:
            return
        with self.writer.as_default(step=step):
            for metric in self.model.metrics:
                value = self._since_last_point(metric)
                if value is not None:
                    tf.summary.scalar(metric.name, value,
                                      description=scalar_description(metric.name))

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        # Before the checkpoint is saved: a killed run keeps the points up to it.
        self.writer.flush()

    def _since_last_point(self, metric) -> Optional[float]:
        if len(metric.variables) != 2:
            return None
        total, count = (float(tf.convert_to_tensor(v).numpy()) for v in metric.variables)
        old_total, old_count = self._previous.get(metric.name, (0.0, 0.0))
        self._previous[metric.name] = (total, count)
        if count > old_count:
            return (total - old_total) / (count - old_count)
        return total / count if count else None
