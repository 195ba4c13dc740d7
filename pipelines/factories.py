"""What the pipelines build from a config: preprocessing, the distribution
strategy, the selector, the compiled model. Nothing here reads a workdir."""

import functools
from typing import Callable, Dict, NamedTuple, Optional

import keras
import ml_collections
import tensorflow as tf

from prism_tf import MemoryBank, PrismModel, PrismSelector, losses
from prism_tf.cluster import multi_worker_strategy
from prism_tf.data import ImageSplit
from prism_tf.data.pipeline import Preprocessing, eval_dataset
from prism_tf.encoders import build_encoder, copy_encoder_weights
from prism_tf.evaluation import as_graph, embed_dataset, retrieval_metrics


STRATEGIES = ("default", "mirrored", "multi_worker")


def preprocessing(config: ml_collections.ConfigDict,
                  channels: Optional[int] = None) -> Preprocessing:
    """The configured preprocessing; `channels` None: the source's own,
    worked out by `Preprocessing.for_split`."""
    options = config.preprocessing
    return Preprocessing(**{**options, "crop_scale": tuple(options.crop_scale),
                            "mean": tuple(options.mean) or None,
                            "std": tuple(options.std) or None}, channels=channels)


def retrieval_on(split: ImageSplit, config: ml_collections.ConfigDict,
                 embed: Callable[[tf.Tensor], tf.Tensor], chunk_size: int = 1024,
                 backend: str = "tensorflow") -> Dict[str, float]:
    """Leave-one-out retrieval metrics of `embed` on `split`, preprocessed
    for evaluation as the config says."""
    data = eval_dataset(split, config.eval.batch_size, preprocessing(config))
    embeddings, labels = embed_dataset(as_graph(embed, data.element_spec[0]), data)
    return retrieval_metrics(embeddings, labels, config.eval.recall_at, chunk_size, backend)


def distribution_strategy(name: str, connect_timeout_s: float = 300.0) -> tf.distribute.Strategy:
    """The `tf.distribute` strategy that `train.strategy` names.

    default: the current strategy (one device). mirrored: one replica per
    local GPU; without GPUs one per logical CPU device (one, unless the
    program split the CPU, as the tests do). multi_worker:
    MultiWorkerMirroredStrategy over the cluster in TF_CONFIG, with each
    worker's GPUs (or its CPU), once every worker has connected
    (`prism_tf.cluster`: `ClusterError` after `connect_timeout_s`); made
    before any other TensorFlow op, as it must be.

    One per name and process, reused by later runs in it: the collectives of
    a second MirroredStrategy over the same devices take the first one's
    keys again, and TensorFlow aborts them ("Collective instance ...
    expected type ...").
    """
    return _strategy(name, connect_timeout_s if name == "multi_worker" else None)


@functools.lru_cache(maxsize=None)
def _strategy(name: str, connect_timeout_s: Optional[float]) -> tf.distribute.Strategy:
    """`distribution_strategy`, one per name (the timeout only counts for
    multi_worker, so it is not part of the other names' key)."""
    if name == "multi_worker":
        return multi_worker_strategy(connect_timeout_s)
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    return tf.distribute.get_strategy()


def build_selector(config: ml_collections.ConfigDict) -> Optional[PrismSelector]:
    """`PrismSelector(**config.selector)`, or None (no selection: every sample
    trains) when the assumed noise rate is 0."""
    if not config.selector.noise_rate:
        return None
    return PrismSelector(**config.selector)


class EncoderStart(NamedTuple):
    """Where the encoder of a run that starts takes its weights from: a
    `weights_file` (or 'imagenet') that `build_encoder` loads, or
    `variables` copied from another run or export. `record` says which
    (`encoder_start.json`; for `model.init_from`, the step or export version
    copied: the source may be a run that is still training)."""
    weights_file: Optional[str]
    variables: Optional[list]
    record: Dict[str, object]

    def message(self, encoder: str) -> str:
        """One line saying where the encoder's weights start from."""
        record = self.record
        if "init_from" in record:
            copied = (f"its step {record['step']}" if "step" in record
                      else f"the export {record['export']}")
            return (f"Encoder {encoder}: starts from the encoder of {record['init_from']}, "
                    f"{copied} (model.init_from; fine-tuning).")
        if "weights" in record:
            return f"Encoder {encoder}: starts from the weights {record['weights']!r} (model.weights)."
        return f"Encoder {encoder}: random initialisation (data.seed {record['seed']})."


def build_model(config: ml_collections.ConfigDict, num_classes: int, channels: int,
                start: Optional[EncoderStart]) -> PrismModel:
    """The configured PrismModel, compiled, its encoder's weights from
    `start` (`encoder_start`), or left for a checkpoint to replace (None)."""
    size = config.preprocessing.image_size
    encoder = build_encoder(config.model.encoder, (size, size, channels),
                            config.model.embedding_dim, start and start.weights_file)
    if start and start.variables is not None:
        copy_encoder_weights(start.variables, encoder,
                             f"model.init_from={config.model.init_from!r}")
    batch_loss = losses.get(config.loss.name, **config.loss[config.loss.name],
                            num_classes=num_classes, embedding_dim=config.model.embedding_dim)
    # A loss with weights of its own (proxies) learns them on their own optimizer.
    proxy_optimizer = (_adam(config.train.proxy_learning_rate, config.train.steps)
                       if getattr(batch_loss, "trainable_variables", None) else None)
    model = PrismModel(
        encoder,
        MemoryBank(config.memory.size, config.model.embedding_dim, num_classes),
        build_selector(config),
        batch_loss=batch_loss,
        memory_weight=config.memory.weight,
        memory_start_step=config.memory.start_step,
        normalize_memory_loss=config.memory.normalize,
        dropped_as_negatives=config.loss.dropped_as_negatives)
    model.compile(optimizer=_adam(config.train.learning_rate, config.train.steps),
                  proxy_optimizer=proxy_optimizer, jit_compile=config.train.jit_compile)
    return model


def _adam(learning_rate: float, steps: int) -> keras.optimizers.Optimizer:
    """Adam with the learning rate decayed to 0 over `steps` on a cosine."""
    return keras.optimizers.Adam(
        keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps))
