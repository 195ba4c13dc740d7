"""Work that `tf.distribute` splits across replicas: a training step's
global batch, and embedding batches for evaluation."""

from typing import Callable

import tensorflow as tf


class GlobalBatch:
    """Gathers a step's per-replica tensors into the global batch, and back.

    Created inside a replica's step (`strategy.run`, or Keras's `fit` under
    a strategy's scope) with that replica's number of samples. Gathered
    tensors hold the replicas' rows in replica order, the same on every
    replica, so state updated from them (the memory bank, the selector's
    windows) is updated identically everywhere. Outside a strategy, or with
    one replica, every method returns its argument: no collective is made.

    Collectives must not be made inside a `tf.cond` branch (TF refuses
    synchronisation there); call these methods outside conditionals.

    Example:

    >>> batch = GlobalBatch(local_size=3)
    >>> batch.replicas
    1
    >>> batch.gather(tf.constant([1, 2, 3])).numpy().tolist()
    [1, 2, 3]
    """

    def __init__(self, local_size):
        context = tf.distribute.get_replica_context()
        self.replicas = context.num_replicas_in_sync if context is not None else 1
        self._context = context
        if self.replicas > 1:
            local_size = tf.cast(local_size, tf.int32)
            sizes = context.all_gather(tf.reshape(local_size, [1]), 0)
            replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
            begin = tf.reduce_sum(tf.where(tf.range(self.replicas) < replica, sizes, 0))
            # Indices, not a slice: XLA needs a slice's bounds at compile time.
            self._own = begin + tf.range(local_size)

    def gather(self, local: tf.Tensor) -> tf.Tensor:
        """The replicas' `local` tensors concatenated along axis 0.

        Differentiable: the gradient reaching each replica's rows is summed
        over the replicas (TF's all_gather gradient), so a loss that every
        replica computes identically from gathered rows must be divided by
        `replicas` for the optimizer's sum to equal its gradient once.
        """
        if self.replicas == 1:
            return local
        if local.dtype == tf.bool:   # TF's all_gather takes no booleans
            return tf.cast(self._context.all_gather(tf.cast(local, tf.int32), axis=0), tf.bool)
        return self._context.all_gather(local, axis=0)

    def sum(self, local: tf.Tensor) -> tf.Tensor:
        """The sum of `local` over the replicas."""
        if self.replicas == 1:
            return local
        return self._context.all_reduce(tf.distribute.ReduceOp.SUM, local)

    def own_rows(self, gathered: tf.Tensor) -> tf.Tensor:
        """This replica's rows of a gathered tensor."""
        if self.replicas == 1:
            return gathered
        return tf.gather(gathered, self._own)


def embed_on_replicas(strategy: tf.distribute.Strategy,
                      embed: Callable[[tf.Tensor], tf.Tensor]) -> Callable[[tf.Tensor], tf.Tensor]:
    """`embed` with each batch split evenly across `strategy`'s replicas.

    The parts run on their replicas (`strategy.run`) and come back
    concatenated in order, so the rows match the batch's. Every replica must
    be in this process (MirroredStrategy, or a one-worker strategy): a
    multi-worker strategy would leave this worker only its own part.
    """
    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        return embed
    if len(strategy.extended.worker_devices) != replicas:
        raise ValueError(
            f"embed_on_replicas: {replicas} replicas, {len(strategy.extended.worker_devices)} "
            "of them in this process; embed with a strategy of this process's devices")

    @tf.function(reduce_retracing=True)
    def embed_split(images: tf.Tensor) -> tf.Tensor:
        bounds = (tf.range(replicas + 1) * tf.shape(images)[0]) // replicas

        def part(context):
            replica = context.replica_id_in_sync_group
            return images[bounds[replica]:bounds[replica + 1]]

        parts = strategy.experimental_distribute_values_from_function(part)
        return tf.concat(strategy.experimental_local_results(strategy.run(embed, args=(parts,))),
                         axis=0)

    return embed_split
