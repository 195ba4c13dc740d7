"""A training workdir: claimed for one config (refused with the differing
keys when it holds another), the data it started on (fingerprints in
data.json), its checkpoints, and the run read back (`Run`) by the pipelines
that follow training."""

import hashlib
import json
import shutil
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from absl import logging
import ml_collections
import numpy as np
import tensorflow as tf

from prism_tf import PrismModel
from prism_tf.configs.base import base_config
from prism_tf.data import ImageSplit
from prism_tf.data.duplicates import without_repeats
from prism_tf.data.pipeline import (CorruptImageLog, Preprocessing, drop_undecodable,
                                    sample_dataset)
from prism_tf.data.registry import load_source
from prism_tf.data.verdicts import apply_verdicts, read_verdicts
from prism_tf.evaluation import as_graph, embed_dataset
from prism_tf.export import exported_encoder_variables
from prism_tf.files import write_atomically
from prism_tf.replicas import embed_on_replicas

from .checks import ConfigError, check_encoder_start, leaves
from .factories import EncoderStart, build_model, distribution_strategy, preprocessing

CONFIG_FILE = "config.json"


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


def load_splits(config: ml_collections.ConfigDict, verdicts: bool = True
                ) -> Tuple[ImageSplit, ImageSplit]:
    """(noisy training split, evaluation split) of the configured source;
    `verdicts` False: the training split before `data.verdicts`."""
    data = config.data
    train, test = load_source(data.source, seed=data.seed,
                              image_size=config.preprocessing.image_size, **data[data.source])
    train, test = without_repeats(*(drop_undecodable(split, data.strict)
                                    for split in (train, test)))
    noise = data.injected_noise
    # The rate means nothing without a kind: `injected_noise.kind=none` alone is enough.
    rate = noise.rate if noise.kind != "none" else 0.0
    train = train.with_noise(noise.kind, rate, data.seed)
    if verdicts and data.verdicts:
        train = apply_verdicts(train, read_verdicts(data.verdicts))
    return train, test


def size_text(split: ImageSplit) -> str:
    """A split's image sizes as found: one size, or the smallest to the largest."""
    if split.size_range is None:
        return "unknown"
    low_h, low_w, high_h, high_w = split.size_range
    low, high = f"{low_h}x{low_w}", f"{high_h}x{high_w}"
    return low if low == high else f"{low} to {high}"


def split_records(train: ImageSplit, test: ImageSplit) -> Dict[str, Dict[str, object]]:
    """What data.json says of each split, its `fingerprint` included."""
    return {part: {"name": split.name, "classes": split.num_classes, "samples": len(split),
                   "image_sizes": size_text(split), "skipped_undecodable": list(split.skipped),
                   "repeats_dropped": list(split.repeats_dropped),
                   "fingerprint": fingerprint(split)}
            for part, split in (("train", train), ("test", test))}


def data_report(config: ml_collections.ConfigDict, train: ImageSplit, test: ImageSplit,
                preprocessing: Preprocessing) -> Dict[str, object]:
    """What `DIR/data.json` records about the data of a run (`preprocessing`
    with its channels worked out), with the digest of the config it started
    with (`Run` refuses a config.json edited since)."""
    size = preprocessing.image_size
    return {
        "config_sha256": hashlib.sha256(config_to_json(config).encode()).hexdigest(),
        "image_shape": [size, size, preprocessing.channels],
        **split_records(train, test),
        "noise": {"kind": train.noise.kind, "requested_rate": train.noise.requested_rate,
                  "realized_rate": train.noise.realized_rate,
                  "noisy_samples": train.noise.num_noisy},
        "verdicts": train.verdicts,
    }


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


def encoder_variables_of(path: str) -> Tuple[list, Dict[str, object]]:
    """The encoder variables of a training workdir's latest checkpoint, or of
    an export folder (`prism_tf.export`; its newest version), and which one
    they are (`{"step": N}`, or `{"export": VERSION_FOLDER}`)."""
    if (Path(path) / CONFIG_FILE).is_file():
        model = Run(path).restore()[1]
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


def _check_config_keys(workdir: Path, recorded: dict) -> None:
    """Raises `ConfigError` naming the keys when a run's config.json has
    other keys than this version's configs (a run of an earlier version,
    or one whose loss or data source a module registers that is not
    imported here): rebuilding its model or data from it would fail, or
    mean something else."""
    expected = {key for key, _ in leaves(base_config().to_dict())}
    found = {key for key, _ in leaves(recorded)}
    if expected == found:
        return
    lacking, unknown = sorted(expected - found), sorted(found - expected)
    listed = "; ".join(f"{what}: {', '.join(keys[:6])}{' ...' if len(keys) > 6 else ''}"
                       for what, keys in (("keys it lacks", lacking),
                                          ("keys this version does not know", unknown))
                       if keys)
    raise ConfigError(f"{workdir / CONFIG_FILE} does not have this version's config keys "
                      f"({listed}): use the version of prism-tf that trained it "
                      "(docs/CHANGELOG.md lists the renamed keys), or import the module that "
                      "registers its loss or data source first")


class Run:
    """A training workdir read back by the pipelines that follow training
    (evaluate, export, the label finder, fine-tuning from it): its resolved
    config and data report, refused (`ConfigError`) if it is no workdir or
    its config.json was edited after the run started."""

    def __init__(self, workdir: str):
        self.workdir = Path(workdir)
        for name in (CONFIG_FILE, "data.json"):
            if not (self.workdir / name).is_file():
                raise ConfigError(f"{self.workdir} is not a training workdir: no {name}")
        text = (self.workdir / CONFIG_FILE).read_text()
        self.data_report = _read_json(self.workdir / "data.json")
        digest = hashlib.sha256(text.encode()).hexdigest()
        if self.data_report.get("config_sha256", digest) != digest:
            raise ConfigError(f"{self.workdir / CONFIG_FILE} was changed after the run started "
                              "(data.json has the digest of the one it trained with): put "
                              "the original back; to try other settings, train a new run")
        recorded = _read_json(self.workdir / CONFIG_FILE)
        _check_config_keys(self.workdir, recorded)
        self.config = ml_collections.ConfigDict(recorded)

    @property
    def evaluation_strategy(self) -> str:
        """The run's `train.strategy`, as this one process can use it: a
        multi-worker run is evaluated on this machine's devices ("mirrored")."""
        strategy = self.config.train.get("strategy", "default")
        return "mirrored" if strategy == "multi_worker" else strategy

    def splits(self, before_verdicts: bool = False) -> Tuple[ImageSplit, ImageSplit]:
        """`load_splits` of the run's config, refused (`check_recorded_data`)
        unless they are the splits the run trained and was evaluated on;
        `before_verdicts`: the training split as it was before the run's
        `data.verdicts` (every sample, with the label it was given)."""
        loaded, test = load_splits(self.config, verdicts=False)
        verdicts = self.config.data.verdicts
        train = apply_verdicts(loaded, read_verdicts(verdicts)) if verdicts else loaded
        check_recorded_data(self.workdir, split_records(train, test))
        return (loaded if before_verdicts else train), test

    def restore(self) -> Tuple[Preprocessing, PrismModel]:
        """The preprocessing (with the run's channels) and the latest intact
        checkpointed model, built under the current strategy."""
        run_preprocessing = preprocessing(self.config,
                                          channels=self.data_report["image_shape"][2])
        model = build_model(self.config, self.data_report["train"]["classes"],
                            run_preprocessing.channels, None)
        manager = checkpoint_manager(model, self.workdir)
        checkpoint = latest_intact_checkpoint(self.workdir / "checkpoints")
        if checkpoint is None:
            raise ConfigError(f"{self.workdir}: no checkpoint to restore"
                              + (" that is intact" if manager.latest_checkpoint else ""))
        manager.checkpoint.restore(checkpoint).expect_partial()
        if checkpoint != manager.latest_checkpoint:
            logging.warning("Using %s (step %d).", checkpoint,
                            int(model.optimizer.iterations.numpy()))
        return run_preprocessing, model

    def embedder(self, saved_model: Optional[str] = None
                 ) -> Tuple[Preprocessing, Callable[[tf.Tensor], tf.Tensor]]:
        """(preprocessing, embed): `embed` maps a batch of preprocessed images
        to embeddings, by `saved_model` (one device) or by the latest
        checkpoint under `evaluation_strategy`."""
        if saved_model:
            # The function holds the loaded object, whose variables go with it
            # (TF 2.15 refuses to trace a signature whose variables are gone).
            loaded = tf.saved_model.load(saved_model)
            # The run's channels, as `restore` gives them: a gallery of other
            # files (prism-tf-index) is read as the model was trained.
            return (preprocessing(self.config, channels=self.data_report["image_shape"][2]),
                    lambda images: loaded.signatures["serving_default"](
                        images=images)["embeddings"])
        strategy = distribution_strategy(self.evaluation_strategy)
        with strategy.scope():
            run_preprocessing, model = self.restore()
        return run_preprocessing, embed_on_replicas(
            strategy, lambda images: model(images, training=False))

    def embed_split(self, split: ImageSplit,
                    embedder: Tuple[Preprocessing, Callable[[tf.Tensor], tf.Tensor]]
                    ) -> Tuple[Preprocessing, np.ndarray, np.ndarray]:
        """(preprocessing for `split`, index [N], embeddings [N, D]): `split`
        embedded in evaluation preprocessing by `embedder` (`self.embedder`);
        `index` says which sample of the split each embedding row is
        (images the structural check refuses are left out)."""
        run_preprocessing, embed = embedder
        run_preprocessing = run_preprocessing.for_split(split)
        samples = sample_dataset(split, CorruptImageLog(self.config.data.strict),
                                 run_preprocessing.channels)
        batches = (samples.filter(lambda s: s["ok"])
                   .map(lambda s: (run_preprocessing.eval_view(s["image"]), s["index"]))
                   .batch(self.config.eval.batch_size))
        embeddings, index = embed_dataset(as_graph(embed, batches.element_spec[0]), batches)
        return run_preprocessing, index, embeddings
