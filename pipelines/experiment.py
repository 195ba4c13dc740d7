"""What the train / evaluate / export pipelines share: config checks, data, model."""

import functools
import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

from absl import logging
import keras
import ml_collections
import numpy as np
import tensorflow as tf

from prism_tf import MemoryBank, PrismModel, PrismSelector, losses, selector
from prism_tf.data import ImageSplit
from prism_tf.data.duplicates import without_repeats
from prism_tf.data.noise import NOISE_KINDS
from prism_tf.data.pipeline import Preprocessing, drop_undecodable, eval_dataset
from prism_tf.data.registry import SOURCES, load_source
from prism_tf.cluster import multi_worker_strategy
from prism_tf.encoders import IMAGENET, build_encoder, copy_encoder_weights
from prism_tf.evaluation import embed_dataset, retrieval_metrics
from prism_tf.export import exported_encoder_variables
from prism_tf.files import write_atomically
from prism_tf.replicas import embed_on_replicas

CONFIG_FILE = "config.json"
STRATEGIES = ("default", "mirrored", "multi_worker")


class ConfigError(ValueError):
    """A config value that cannot work, named by its key."""


def check_config(config: ml_collections.ConfigDict) -> None:
    """Raises `ConfigError` naming the key for values that cannot work."""
    def need(ok: bool, key: str, expected: str) -> None:
        if not ok:
            value = config
            for part in key.split("."):
                value = value[part]
            raise ConfigError(f"config.{key} = {value!r}: expected {expected}")

    for key, value in _leaves(config.to_dict()):
        numbers = value if isinstance(value, (tuple, list)) else (value,)
        if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
            raise ConfigError(f"config.{key} = {value!r}: expected finite numbers")
    data, preprocessing = config.data, config.preprocessing
    need(data.source in SOURCES and data.source in data, "data.source",
         f"one of {sorted(SOURCES)}, with its options under config.data.<source>")
    need(isinstance(data.seed, int) and data.seed >= 0, "data.seed", "an integer >= 0")
    need(data.source != "folder" or bool(data.folder.data_dir), "data.folder.data_dir",
         "the folder of your class folders (data.source = 'folder')")
    need(data.injected_noise.kind in NOISE_KINDS, "data.injected_noise.kind",
         f"one of {NOISE_KINDS}")
    need(0.0 <= data.injected_noise.rate < 1.0, "data.injected_noise.rate", "a rate in [0, 1)")
    need(all(v > 0 for v in preprocessing.std), "preprocessing.std",
         "values > 0 (they divide the pixels)")
    need(preprocessing.eval_resize >= 1.0, "preprocessing.eval_resize",
         "a factor >= 1 (the centre crop cannot be larger than the resized image)")
    crop_scale = preprocessing.crop_scale
    need(len(crop_scale) == 2 and 0.0 < crop_scale[0] <= crop_scale[1] <= 1.0,
         "preprocessing.crop_scale", "(low, high) area shares with 0 < low <= high <= 1")
    need(not preprocessing.mean or not preprocessing.std
         or len(preprocessing.mean) == len(preprocessing.std), "preprocessing.std",
         f"as many values as preprocessing.mean ({len(preprocessing.mean)})")
    for name, value in config.selector.items():
        expected = selector.argument_problem(name, value)
        need(expected is None, f"selector.{name}", expected)
    need(config.train.steps > 0, "train.steps", "a positive number of steps")
    need(config.train.strategy in STRATEGIES, "train.strategy", f"one of {STRATEGIES}")
    need(config.train.connect_timeout_s > 0, "train.connect_timeout_s",
         "a positive number of seconds")
    need(config.train.eval_every > 0, "train.eval_every", "a positive number of steps")
    need(0.0 < config.train.learning_rate <= 1.0, "train.learning_rate",
         "a learning rate in (0, 1]")
    need(config.eval.batch_size > 0, "eval.batch_size", "a positive batch size")
    need(len(config.eval.recall_at) > 0 and all(
        isinstance(k, int) and k >= 1 for k in config.eval.recall_at), "eval.recall_at",
        "integers >= 1, e.g. (1, 2, 4, 8)")
    need(config.train.batch_size > 0, "train.batch_size", "a positive batch size")
    samples_per_class = config.sampling.samples_per_class
    need(samples_per_class >= 2 or not _compares_pairs(config.loss.name),
         "sampling.samples_per_class", "at least 2: the pair and triplet losses learn from "
         "two images of a class in a batch (one is enough for the proxy losses)")
    need(samples_per_class > 0 and config.train.batch_size % samples_per_class == 0,
         "train.batch_size", f"a multiple of sampling.samples_per_class ({samples_per_class})")
    need(config.memory.weight >= 0, "memory.weight", "a weight >= 0 (0: the memory only "
         "scores)")
    need(config.memory.size >= config.train.batch_size, "memory.size",
         f"at least train.batch_size ({config.train.batch_size})")
    loss_names = sorted(losses.LOSSES)
    need(config.loss.name in loss_names and config.loss.name in config.loss, "loss.name",
         f"one of {loss_names}, with its arguments under config.loss.<name>")
    need(0.0 < config.train.proxy_learning_rate <= 1.0, "train.proxy_learning_rate",
         "a learning rate in (0, 1]")
    model = config.model
    need(not (model.init_from and model.weights), "model.init_from",
         f"'' when model.weights is set ({model.weights!r}): start from one or the other")


def _compares_pairs(loss_name: str) -> bool:
    """Whether the loss learns from pairs of one class's images (a metric
    loss; a proxy loss compares each image with its proxies)."""
    return issubclass(losses.LOSSES.get(loss_name, losses.MetricLoss), losses.MetricLoss)


def check_encoder_start(config: ml_collections.ConfigDict) -> None:
    """Raises `ConfigError` unless the encoder's starting weights
    (`model.weights`, `model.init_from`) are there. Only a run that starts
    needs them: a resumed one starts from its own checkpoint."""
    model = config.model
    if not (model.weights in ("", IMAGENET) or Path(model.weights).is_file()):
        raise ConfigError(f"config.model.weights = {model.weights!r}: expected '', "
                          f"{IMAGENET!r} or an existing weights file (.h5 / .weights.h5)")
    if model.init_from and not Path(model.init_from).is_dir():
        raise ConfigError(f"config.model.init_from = {model.init_from!r}: expected '' or an "
                          "existing training workdir or export folder")


def _leaves(tree: dict, prefix: str = ""):
    """(dotted key, value) of every value of a nested dict."""
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def config_to_json(config: ml_collections.ConfigDict) -> str:
    return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=list)


def claim_workdir(workdir: Path, config: ml_collections.ConfigDict) -> bool:
    """Writes the resolved config to `workdir`, or checks it against the one there.

    Returns whether the workdir already held this experiment (a resume).
    Raises `ConfigError` listing the differing keys, and writes nothing,
    when the workdir holds a different config.
    """
    if check_workdir(workdir, config):
        return True
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        write_atomically(workdir / CONFIG_FILE, config_to_json(config))
    except OSError as error:
        raise ConfigError(f"cannot write to workdir {workdir}: {error.strerror}") from None
    return False


def check_workdir(workdir: Path, config: ml_collections.ConfigDict) -> bool:
    """Whether `workdir` holds this experiment already; writes nothing.

    Raises `ConfigError` listing the differing keys when it holds another.
    """
    path = workdir / CONFIG_FILE
    if workdir.exists() and not workdir.is_dir():
        raise ConfigError(f"workdir {workdir} is a file, not a folder")
    if not path.exists():
        return False
    old, new = json.loads(path.read_text()), json.loads(config_to_json(config))
    if old != new:
        raise ConfigError(
            f"{workdir} holds a different experiment ({path}); differing keys: "
            + ", ".join(sorted(_differences(old, new)))
            + ". Use another --workdir or the same config.")
    return True


def _differences(old: dict, new: dict, prefix: str = ""):
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            yield from _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            yield f"{prefix}{key} ({a!r} -> {b!r})"


def load_splits(config: ml_collections.ConfigDict) -> Tuple[ImageSplit, ImageSplit]:
    """(noisy training split, evaluation split) of the configured source."""
    data = config.data
    train, test = load_source(data.source, seed=data.seed,
                              image_size=config.preprocessing.image_size, **data[data.source])
    train, test = without_repeats(*(drop_undecodable(split, data.strict)
                                    for split in (train, test)))
    noise = data.injected_noise
    # The rate means nothing without a kind: `injected_noise.kind=none` alone is enough.
    rate = noise.rate if noise.kind != "none" else 0.0
    return train.with_noise(noise.kind, rate, data.seed), test


def _size_text(split: ImageSplit) -> str:
    if split.size_range is None:
        return "unknown"
    low_h, low_w, high_h, high_w = split.size_range
    low, high = f"{low_h}x{low_w}", f"{high_h}x{high_w}"
    return low if low == high else f"{low} to {high}"


def data_message(train: ImageSplit, test: ImageSplit,
                 config: ml_collections.ConfigDict) -> str:
    """What a run prints about its images: sizes found, and what becomes of them."""
    options = config.preprocessing
    size = options.image_size
    flips = "random horizontal flips" if options.flip else "no flips"
    return (f"Images: {train.name} {_size_text(train)}, {test.name} {_size_text(test)}; "
            f"all resized to {size}x{size} (preprocessing.image_size). Training: random crops "
            f"of {tuple(options.crop_scale)} of the area (preprocessing.crop_scale), {flips} "
            f"(preprocessing.flip). Evaluation: shorter side to "
            f"{round(size * options.eval_resize)}, centre crop (preprocessing.eval_resize)."
            + "".join(f" Left out of {split.name}: {len(split.repeats_dropped)} images that "
                      f"repeat an earlier one (same file or bytes), e.g. "
                      f"{split.repeats_dropped[0]}; data.json lists them."
                      for split in (train, test) if split.repeats_dropped))


def noise_message(train: ImageSplit, config: ml_collections.ConfigDict) -> str:
    """One line saying whether label noise was injected, and how much."""
    report = train.noise
    if report.kind == "none":
        known = (f"; {report.num_noisy} labels known to be wrong" if report.num_noisy else "")
        return f"Labels of {train.name} used as given (no noise injected{known})."
    return (f"Injected {report.kind} label noise into {train.name}: {report.num_noisy} of "
            f"{report.num_samples} labels ({report.realized_rate:.1%}) made wrong on purpose "
            f"(data.injected_noise.kind={report.kind}, rate={config.data.injected_noise.rate}; "
            "set data.injected_noise.kind=none to train on the labels as given).")


def strategy_message(strategy: tf.distribute.Strategy,
                     config: ml_collections.ConfigDict) -> str:
    """One line saying where the training steps run."""
    if config.train.strategy == "default":
        return "Training on one device (train.strategy = 'default')."
    replicas, batch = strategy.num_replicas_in_sync, config.train.batch_size
    return (f"Training on {replicas} replicas (train.strategy = {config.train.strategy!r}; "
            f"this worker's devices: {', '.join(strategy.extended.worker_devices)}): "
            f"global batch {batch}, {batch // replicas} per replica.")


def data_report(config: ml_collections.ConfigDict, train: ImageSplit, test: ImageSplit,
                preprocessing: Preprocessing) -> Dict[str, object]:
    """What `DIR/data.json` records about the data of a run (`preprocessing`
    with its channels worked out), with the digest of the config it started
    with (`read_run` refuses a config.json edited since)."""
    size = preprocessing.image_size
    return {
        "config_sha256": hashlib.sha256(config_to_json(config).encode()).hexdigest(),
        "image_shape": [size, size, preprocessing.channels],
        **split_records(train, test),
        "noise": {"kind": train.noise.kind, "requested_rate": train.noise.requested_rate,
                  "realized_rate": train.noise.realized_rate,
                  "noisy_samples": train.noise.num_noisy},
    }


def split_records(train: ImageSplit, test: ImageSplit) -> Dict[str, Dict[str, object]]:
    """What data.json says of each split, its `fingerprint` included."""
    return {part: {"name": split.name, "classes": split.num_classes, "samples": len(split),
                   "image_sizes": _size_text(split), "skipped_undecodable": list(split.skipped),
                   "repeats_dropped": list(split.repeats_dropped),
                   "fingerprint": fingerprint(split)}
            for part, split in (("train", train), ("test", test))}


def fingerprint(split: ImageSplit) -> str:
    """sha256 of a split's samples (their paths, or their images when held
    in memory) in order, with the labels the model sees: what tells that a
    run is resumed (or scored) on the data it started on.

    >>> from prism_tf.data import synthetic
    >>> split = synthetic("test", num_classes=4, images_per_class=2)
    >>> fingerprint(split) == fingerprint(split.with_noise("symmetric", 0.5, seed=0))
    False
    """
    digest = hashlib.sha256(np.ascontiguousarray(split.labels, np.int64).tobytes())
    if split.pixels is not None:
        digest.update(np.ascontiguousarray(split.pixels).tobytes())
    else:
        for item in split.images:
            digest.update(hashlib.sha256(item if isinstance(item, bytes)
                                         else str(item).encode()).digest())
    return digest.hexdigest()


def check_recorded_data(workdir: Path, records: Dict[str, object]) -> None:
    """Raises `ConfigError` when the splits (`split_records`, or a whole
    `data_report`) are not those the run in `workdir` recorded in its
    data.json (an image deleted or added, other labels, noise drawn over
    another sample list); nothing to compare with before the run has
    started, or in a run older than the fingerprints."""
    recorded = _read_json(Path(workdir) / "data.json")
    if recorded is None:
        return
    changes = []
    for part in ("train", "test"):
        old, new = recorded.get(part, {}), records[part]
        if old.get("fingerprint", new["fingerprint"]) != new["fingerprint"]:
            changes.append(f"{part}: {old.get('samples')} samples then, {new['samples']} now"
                           if old.get("samples") != new["samples"] else
                           f"{part}: {new['samples']} samples, but other images or labels")
    if changes:
        raise ConfigError(
            f"{workdir} was started on other data than its config gives now "
            f"({'; '.join(changes)}; data.json has what it started on). A run keeps the "
            "labels it started with: restore the data, or use a new --workdir.")


def _read_json(path: Path) -> Optional[dict]:
    """A JSON file the pipelines wrote, None if absent; `ConfigError` naming
    the file if it cannot be read."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is damaged ({error}); it was not written by a finished "
                          "write of this project") from None


def check_evaluation_split(split: ImageSplit, recall_at: Tuple[int, ...]) -> None:
    """Raises `ConfigError` unless some label of `split` has 2 or more items
    (leave-one-out retrieval has nothing to find otherwise) and every
    Recall@K looks at fewer than all the other items (at all of them it is
    1.0 whatever the embeddings)."""
    if len(split) < 2 or np.bincount(split.labels).max() < 2:
        raise ConfigError(f"the evaluation split {split.name} has no class with 2 or more "
                          "images: retrieval cannot be scored on it")
    if max(recall_at) >= len(split) - 1:
        raise ConfigError(f"config.eval.recall_at = {tuple(recall_at)!r}: expected values "
                          f"below {len(split) - 1}, the other images of each query in "
                          f"{split.name} (Recall@K over all of them is 1.0 by definition)")


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
    embeddings, labels = embed_dataset(embed, data)
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


def check_batch_splits(config: ml_collections.ConfigDict,
                       strategy: tf.distribute.Strategy) -> None:
    """Raises `ConfigError` unless `train.batch_size` splits evenly across
    the strategy's replicas (each takes an equal share of the global batch)."""
    replicas = strategy.num_replicas_in_sync
    if config.train.batch_size % replicas:
        raise ConfigError(
            f"config.train.batch_size = {config.train.batch_size}: expected a multiple of "
            f"the {replicas} replicas of train.strategy = {config.train.strategy!r} (the "
            "global batch is split evenly across them)")


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


def encoder_start(config: ml_collections.ConfigDict) -> EncoderStart:
    """The starting weights of a run's encoder (`model.weights`,
    `model.init_from`, else random from `data.seed`); `ConfigError` if they
    are not there."""
    check_encoder_start(config)
    model = config.model
    if model.init_from:
        variables, copied = encoder_variables_of(model.init_from)
        return EncoderStart(None, variables, {"init_from": model.init_from, **copied})
    if model.weights:
        return EncoderStart(model.weights, None, {"weights": model.weights})
    return EncoderStart(None, None, {"seed": config.data.seed})


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
        normalize_memory_loss=config.memory.normalize)
    model.compile(optimizer=_adam(config.train.learning_rate, config.train.steps),
                  proxy_optimizer=proxy_optimizer, jit_compile=config.train.jit_compile)
    return model


def _adam(learning_rate: float, steps: int) -> keras.optimizers.Optimizer:
    """Adam with the learning rate decayed to 0 over `steps` on a cosine."""
    return keras.optimizers.Adam(
        keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps))


def encoder_variables_of(path: str) -> Tuple[list, Dict[str, object]]:
    """The encoder variables of a training workdir's latest checkpoint, or of
    an export folder (`prism_tf.export`; its newest version), and which one
    they are (`{"step": N}`, or `{"export": VERSION_FOLDER}`)."""
    if (Path(path) / CONFIG_FILE).is_file():
        model = restore_run(path)[2]
        return model.encoder.variables, {"step": int(model.optimizer.iterations.numpy())}
    try:
        folder, variables = exported_encoder_variables(path)
    except FileNotFoundError:
        raise ConfigError(f"{path} is neither a training workdir (no {CONFIG_FILE}) nor "
                          "an export folder (no saved_model.pb)") from None
    return variables, {"export": str(folder)}


def checkpoint_manager(model: PrismModel, workdir: Path) -> tf.train.CheckpointManager:
    """Checkpoints of the model (encoder, memory bank, window), its optimizer,
    the logs of the epoch that ended with it (JSON in `epoch_logs`) and the
    P@1 of every evaluation so far (`precision_at_1_history`)."""
    with model.distribute_strategy.scope():   # slots mirrored as the weights are
        model.build_optimizers()
    proxies = {"proxy_optimizer": model.proxy_optimizer} if model.proxy_optimizer else {}
    # The string variables outside it: a multi-worker strategy would
    # broadcast their initial values, and TF's collectives take no strings.
    checkpoint = tf.train.Checkpoint(
        model=model, optimizer=model.optimizer, **proxies,
        epoch_logs=tf.Variable("", dtype=tf.string),
        precision_at_1_history=tf.Variable("", dtype=tf.string))
    return tf.train.CheckpointManager(checkpoint, str(workdir / "checkpoints"), max_to_keep=3)


def remove_stale_checkpoints(manager: tf.train.CheckpointManager) -> List[str]:
    """Deletes what a killed save leaves beside the checkpoints: `*_temp`
    folders and files of checkpoints the manager does not list. Returns
    their names."""
    listed = {Path(path).name for path in manager.checkpoints}
    removed = []
    for path in sorted(Path(manager.directory).glob("ckpt-*")):
        if path.name.split(".")[0] not in listed:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
            removed.append(path.name)
    return removed


def latest_intact_checkpoint(directory: Path) -> Optional[str]:
    """The newest checkpoint in `directory` whose files are whole, or None.

    Each candidate, newest first, has its index read and every tensor
    checked against its stored checksum; a damaged or incomplete one (a
    truncated `.data`, a missing `.index`) is skipped with a warning that
    names it and the checkpoint used instead.
    """
    state = tf.train.get_checkpoint_state(str(directory))
    candidates = list(reversed(state.all_model_checkpoint_paths)) if state else []
    for path in candidates:
        problem = _checkpoint_problem(path)
        if problem is None:
            return path
        logging.warning("Checkpoint %s cannot be used (%s); trying the one before it.",
                        path, problem)
    return None


def _checkpoint_problem(path: str) -> Optional[str]:
    """Why the checkpoint at `path` cannot be restored, or None if it can."""
    try:
        reader = tf.train.load_checkpoint(path)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except (tf.errors.OpError, ValueError, IndexError, OSError) as error:
        # A truncated .data file reads short (IndexError), a missing file or
        # a checksum mismatch is an OpError.
        return _first_line(error)
    return None


def _first_line(error: BaseException) -> str:
    """A TensorFlow error's message, first line only."""
    text = getattr(error, "message", None) or str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def read_run(workdir: str) -> Tuple[ml_collections.ConfigDict, Dict[str, object]]:
    """The resolved config and the data report of a training workdir."""
    workdir = Path(workdir)
    for name in (CONFIG_FILE, "data.json"):
        if not (workdir / name).is_file():
            raise ConfigError(f"{workdir} is not a training workdir: no {name}")
    text, data = (workdir / CONFIG_FILE).read_text(), _read_json(workdir / "data.json")
    digest = hashlib.sha256(text.encode()).hexdigest()
    if data.get("config_sha256", digest) != digest:
        raise ConfigError(f"{workdir / CONFIG_FILE} was changed after the run started "
                          "(data.json has the digest of the one it trained with): put "
                          "the original back; to try other settings, train a new run")
    return ml_collections.ConfigDict(_read_json(workdir / CONFIG_FILE)), data


def load_run_splits(workdir: str, config: ml_collections.ConfigDict
                    ) -> Tuple[ImageSplit, ImageSplit]:
    """`load_splits` of a run's config, refused (`check_recorded_data`)
    unless they are the splits the run trained and was evaluated on."""
    train, test = load_splits(config)
    check_recorded_data(Path(workdir), split_records(train, test))
    return train, test


def restore_run(workdir: str) -> Tuple[ml_collections.ConfigDict, Preprocessing, PrismModel]:
    """The config, the preprocessing (with the run's channels) and the latest
    checkpointed model of a training workdir."""
    config, data = read_run(workdir)
    workdir = Path(workdir)
    run_preprocessing = preprocessing(config, channels=data["image_shape"][2])
    model = build_model(config, data["train"]["classes"], run_preprocessing.channels, None)
    manager = checkpoint_manager(model, workdir)
    checkpoint = latest_intact_checkpoint(workdir / "checkpoints")
    if checkpoint is None:
        raise ConfigError(f"{workdir}: no checkpoint to restore"
                          + (" that is intact" if manager.latest_checkpoint else ""))
    manager.checkpoint.restore(checkpoint).expect_partial()
    if checkpoint != manager.latest_checkpoint:
        logging.warning("Using %s (step %d).", checkpoint,
                        int(model.optimizer.iterations.numpy()))
    return config, run_preprocessing, model


def embedder(workdir: str, saved_model: Optional[str] = None
             ) -> Tuple[ml_collections.ConfigDict, Preprocessing, Callable]:
    """(config, preprocessing, embed) of a run: `embed` maps a batch of
    preprocessed images to embeddings, by `saved_model` (one device) or by the
    run's latest checkpoint under the run's strategy (`evaluation_strategy`)."""
    if saved_model:
        config, _ = read_run(workdir)
        signature = tf.saved_model.load(saved_model).signatures["serving_default"]
        return (config, preprocessing(config),
                lambda images: signature(images=images)["embeddings"])
    strategy = distribution_strategy(evaluation_strategy(workdir))
    with strategy.scope():
        config, run_preprocessing, model = restore_run(workdir)
    return (config, run_preprocessing,
            embed_on_replicas(strategy, lambda images: model(images, training=False)))


def evaluation_strategy(workdir: str) -> str:
    """The run's `train.strategy`, as this one process can use it: a
    multi-worker run is evaluated on this machine's devices ("mirrored")."""
    strategy = read_run(workdir)[0].train.get("strategy", "default")
    return "mirrored" if strategy == "multi_worker" else strategy
