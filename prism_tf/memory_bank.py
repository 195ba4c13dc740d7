"""A FIFO memory of past embeddings with exact per-class centres (XBM/PRISM)."""

from typing import Tuple

import keras
import tensorflow as tf

from prism_tf import compat

EMPTY_LABEL = -1


def check_labels(labels: tf.Tensor, num_classes: int, where: str) -> tf.Tensor:
    """Returns `labels` as int32 [B], raising if any is outside [0, num_classes).

    Outside XLA the check raises `InvalidArgumentError` before anything that
    depends on the returned tensor runs. XLA compiles assertions away, so
    callers that write state also drop invalid rows themselves.
    """
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    valid = tf.logical_and(labels >= 0, labels < num_classes)
    check = tf.debugging.Assert(
        tf.reduce_all(valid),
        [f"{where}: labels must be integers in [0, {num_classes}); got", labels],
        summarize=20,
    )
    with tf.control_dependencies([check]):
        return tf.identity(labels)


def check_embeddings(embeddings: tf.Tensor, dim: int, where: str) -> tf.Tensor:
    """Returns `embeddings` as float32 [B, dim], raising on any other width."""
    embeddings = tf.cast(tf.convert_to_tensor(embeddings), tf.float32)
    if embeddings.shape.rank != 2 or embeddings.shape[-1] not in (None, dim):
        raise ValueError(
            f"{where}: embeddings must have shape [batch, {dim}]; "
            f"got shape {embeddings.shape}"
        )
    check = tf.debugging.assert_equal(
        tf.shape(embeddings)[1], dim,
        message=f"{where}: embeddings must have width {dim}",
    )
    with tf.control_dependencies([check]):
        return tf.identity(embeddings)


def _scatter_nd(variable: tf.Variable, indices: tf.Tensor, updates: tf.Tensor,
                add: bool) -> None:
    """Adds `updates` at `indices` of `variable`, or writes them there.

    A variable mirrored across replicas (`tf.distribute`) has no scatter
    ops; there the whole new value is assigned, which each replica does to
    its own copy. Every replica makes the same update from the same global
    batch (`PrismModel.train_step`), so the copies stay identical.
    """
    if isinstance(variable, tf.distribute.DistributedValues):
        scatter = tf.tensor_scatter_nd_add if add else tf.tensor_scatter_nd_update
        variable.assign(scatter(variable, indices, updates))
    elif add:
        variable.scatter_nd_add(indices, updates)
    else:
        variable.scatter_nd_update(indices, updates)


@compat.register_serializable(package="prism_tf")
class MemoryBank(keras.layers.Layer):
    """Ring buffer of `size` (embedding, label) rows with per-class sums.

    New rows overwrite the oldest ones. Alongside the rows the bank keeps, for
    every class, the sum and the count of its embeddings in memory, updated on
    each enqueue and eviction, so `class_centers()` is exact at a cost of
    O(batch x dim) per step instead of a pass over the whole memory.

    All state lives in non-trainable weights of static shape: the bank runs
    inside `tf.function` and XLA, and is saved with the model (`.keras` files
    and `tf.train.Checkpoint`).

    Example:

    >>> bank = MemoryBank(size=4, dim=2, num_classes=3)
    >>> bank.enqueue([[1., 0.], [0., 1.], [1., 0.]], [0, 1, 0])
    >>> centers, counts = bank.class_centers()
    >>> counts.numpy().tolist()
    [2, 1, 0]
    >>> centers.numpy()[0].tolist()
    [1.0, 0.0]
    """

    def __init__(self, size: int, dim: int, num_classes: int, **kwargs):
        for name, value in (("size", size), ("dim", dim), ("num_classes", num_classes)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(
                    f"MemoryBank: {name} must be a positive integer; got {value!r}"
                )
        kwargs.setdefault("dtype", "float32")
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.size, self.dim, self.num_classes = size, dim, num_classes
        self._embeddings = self.add_weight(
            name="embeddings", shape=(size, dim), initializer="zeros",
            trainable=False)
        self._labels = self.add_weight(
            name="labels", shape=(size,), dtype="int32",
            initializer=keras.initializers.Constant(EMPTY_LABEL), trainable=False)
        self._position = self.add_weight(
            name="position", shape=(), dtype="int32", initializer="zeros",
            trainable=False)
        self._class_sums = self.add_weight(
            name="class_sums", shape=(num_classes, dim), initializer="zeros",
            trainable=False)
        self._class_counts = self.add_weight(
            name="class_counts", shape=(num_classes,), dtype="int32",
            initializer="zeros", trainable=False)
        self.built = True

    @property
    def embeddings(self) -> tf.Variable:
        """Memory rows [size, dim]; rows of empty slots are zero."""
        return compat.tf_variable(self._embeddings)

    @property
    def labels(self) -> tf.Variable:
        """Labels of the memory rows [size]; -1 marks an empty slot."""
        return compat.tf_variable(self._labels)

    @property
    def position(self) -> tf.Variable:
        """Index of the slot the next row goes to."""
        return compat.tf_variable(self._position)

    @property
    def class_counts(self) -> tf.Variable:
        """Number of memory rows of each class [num_classes]."""
        return compat.tf_variable(self._class_counts)

    @property
    def class_sums(self) -> tf.Variable:
        """Sum of the memory rows of each class [num_classes, dim]."""
        return compat.tf_variable(self._class_sums)

    def occupied(self) -> tf.Tensor:
        """Which slots hold a row: bool [size] (the rest are empty, label -1)."""
        return tf.not_equal(self.labels, EMPTY_LABEL)

    def fill_fraction(self) -> tf.Tensor:
        """Share of the slots that hold a row."""
        return tf.cast(tf.reduce_sum(self.class_counts), tf.float32) / self.size

    def class_centers(self) -> Tuple[tf.Tensor, tf.Tensor]:
        """Mean memory embedding of each class, not re-normalised.

        Returns:
          centers: float32 [num_classes, dim]; zero for classes not in memory.
          counts: int32 [num_classes], rows of each class in memory.
        """
        counts = tf.convert_to_tensor(self.class_counts)
        present = counts > 0
        denominator = tf.cast(tf.maximum(counts, 1), tf.float32)[:, None]
        # Rounding can leave a tiny residue in the sum of an emptied class.
        centers = tf.where(present[:, None], self.class_sums / denominator, 0.0)
        return centers, counts

    def enqueue(self, embeddings, labels, mask=None) -> None:
        """Writes the rows where `mask` is true, in batch order, oldest out.

        Args:
          embeddings: float [B, dim], B <= size.
          labels: int [B] in [0, num_classes).
          mask: optional bool [B]; rows where it is false are not written.

        Raises:
          ValueError / InvalidArgumentError: wrong embedding width, a batch
            larger than the memory, or a label outside [0, num_classes).
            Nothing is written then.
        """
        embeddings = check_embeddings(embeddings, self.dim, "MemoryBank.enqueue")
        labels = check_labels(labels, self.num_classes, "MemoryBank.enqueue")
        batch = tf.shape(embeddings)[0]
        if embeddings.shape[0] is not None and embeddings.shape[0] > self.size:
            raise ValueError(
                f"MemoryBank.enqueue: a batch of {embeddings.shape[0]} rows does "
                f"not fit a memory of {self.size} rows")
        fits = tf.debugging.assert_less_equal(
            batch, self.size, message="MemoryBank.enqueue: batch larger than memory")
        # Under XLA the checks above are compiled away: drop bad rows instead.
        write = tf.logical_and(labels >= 0, labels < self.num_classes)
        if mask is not None:
            write = tf.logical_and(write, tf.reshape(tf.cast(mask, tf.bool), [-1]))
        # Rows not written must not reach the class sums, even times 0 (NaN * 0 = NaN).
        embeddings = tf.where(write[:, None], embeddings, 0.0)
        with tf.control_dependencies([fits]):
            self._write(embeddings, labels, write)

    def _write(self, embeddings: tf.Tensor, labels: tf.Tensor, write: tf.Tensor):
        """Static-shape enqueue: every batch row targets a distinct slot.

        The rows to write are moved to the front (stable), then all B rows
        go to the next B slots; slots past the written ones get their own
        old contents back, so the scatter never needs a dynamic shape.
        """
        batch = tf.shape(embeddings)[0]
        num_new = tf.reduce_sum(tf.cast(write, tf.int32))
        order = tf.argsort(tf.cast(tf.logical_not(write), tf.int32), stable=True)
        new_rows = tf.gather(embeddings, order)
        new_labels = tf.gather(labels, order)
        slots = (self.position + tf.range(batch)) % self.size
        old_rows = tf.gather(self.embeddings, slots)
        old_labels = tf.gather(self.labels, slots)
        replaced = tf.range(batch) < num_new
        evicted = tf.logical_and(replaced, tf.not_equal(old_labels, EMPTY_LABEL))

        # Class statistics: add the new rows, subtract the evicted ones.
        stat_labels = tf.concat([new_labels, old_labels], 0)
        stat_on = tf.concat([replaced, evicted], 0)
        stat_sign = tf.concat(
            [tf.cast(replaced, tf.float32), -tf.cast(evicted, tf.float32)], 0)
        stat_index = tf.where(stat_on, stat_labels, 0)[:, None]
        _scatter_nd(self.class_sums, stat_index,
                    tf.concat([new_rows, old_rows], 0) * stat_sign[:, None], add=True)
        _scatter_nd(self.class_counts, stat_index, tf.cast(stat_sign, tf.int32), add=True)

        _scatter_nd(self.embeddings, slots[:, None],
                    tf.where(replaced[:, None], new_rows, old_rows), add=False)
        _scatter_nd(self.labels, slots[:, None],
                    tf.where(replaced, new_labels, old_labels), add=False)
        self.position.assign((self.position + num_new) % self.size)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(size=self.size, dim=self.dim, num_classes=self.num_classes)
        return config
