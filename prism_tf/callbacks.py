"""Keras callbacks for PRISM training runs: checkpoints and retrieval evaluation."""

import json
from typing import Dict, Optional, Sequence

import keras
import tensorflow as tf

from prism_tf.evaluation import embed_dataset, retrieval_metrics


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

    def evaluate(self) -> Dict[str, float]:
        embeddings, labels = embed_dataset(
            lambda images: self.model(images, training=False), self.dataset)
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
    continues it. The epoch's scalars are flushed at once (the writers would
    hold them up to two minutes), so a checkpoint saved after this callback
    never has scalars that a kill could lose.
    """

    def on_epoch_end(self, epoch: int, logs: Optional[Dict] = None) -> None:
        super().on_epoch_end(int(self.model.optimizer.iterations.numpy()), logs)
        for writer in (self._train_writer, self._val_writer):
            writer.flush()
