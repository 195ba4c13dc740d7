r"""Train a PRISM model with `model.fit`; resumable, watched in TensorBoard.

    python -m pipelines.train --config=configs/default.py --workdir=/tmp/prism \
        [--config.data.injected_noise.rate=0.2 ...]

Writes to the workdir: `config.json` (the resolved config), `data.json`
(classes and samples per split, noise kind, requested and realised rate),
`checkpoints/` (encoder, optimizer, memory bank, selector window; one per
`train.eval_every` steps), `tensorboard/`, and at the end `metrics.json`.
Started again with the same command, a run resumes from its last
checkpoint; a workdir holding a different config is refused untouched.
"""

import json
from pathlib import Path
import shutil
import tempfile
from typing import Dict, List, Tuple

from absl import app, flags, logging
import keras
import ml_collections
import numpy as np
from ml_collections import config_flags
import tensorflow as tf

from . import checks, cli, factories, runs
from prism_tf.callbacks import (CheckpointAtEpochEnd, RetrievalEvaluation, StepScalars,
                                StepTensorBoard)
from prism_tf.cluster import lost_worker_error
from prism_tf.data import ImageSplit
from prism_tf.data.pipeline import (Preprocessing, class_balanced_indices, eval_dataset,
                                    sample_dataset, train_dataset)
from prism_tf.files import write_atomically
from prism_tf.model import InvalidBatchError
from prism_tf.monitoring import CleanProbabilityMonitor, RetrievalExamples

FLAGS = flags.FLAGS


def _define_flags() -> None:
    # Defined only when run as a program, so tests can import the module.
    config_flags.DEFINE_config_file("config", None, "Experiment config file.", lock_config=True)
    flags.DEFINE_string("workdir", None, "Folder for config, checkpoints, logs and metrics.")
    flags.DEFINE_integer("verbose", None, "fit's output: 0 none, 1 progress bar, 2 one line "
                         "per epoch; default: 1 on a terminal, else 2.")


def fixed_sample(split: ImageSplit, count: int, preprocessing: Preprocessing,
                 seed: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, labels, is_noisy) of `count` samples drawn once by `seed`, in
    evaluation `preprocessing` (channels set): what the monitoring callbacks
    show each epoch."""
    rng = np.random.default_rng(seed)
    indices = np.sort(rng.choice(len(split), min(count, len(split)), replace=False))
    samples = sample_dataset(split, channels=preprocessing.channels, indices=indices)
    batch = samples.map(lambda s: (preprocessing.eval_view(s["image"]), s["label"],
                                   s["is_noisy"])).batch(len(indices))
    return tuple(t.numpy() for t in next(iter(batch)))


def train(config: ml_collections.ConfigDict, workdir: str, verbose: int = 1) -> Dict[str, float]:
    """Runs (or resumes) the experiment; returns the final metrics.

    Everything is checked and built before the workdir is touched, so a
    config or data error leaves no files that would block the corrected
    command.
    """
    checks.check_config(config)
    workdir = Path(workdir)
    # Every worker refuses another experiment's workdir, before the strategy
    # connects them (a worker that fails alone leaves the others waiting).
    runs.check_workdir(workdir, config)
    # First: MultiWorkerMirroredStrategy must exist before any other TF op.
    strategy = factories.distribution_strategy(config.train.strategy,
                                              config.train.connect_timeout_s)
    checks.check_batch_splits(config, strategy)
    # Every worker of a multi-worker run trains and saves checkpoints; the
    # chief writes the workdir, each other worker a scratch folder of its own,
    # deleted at the end.
    if strategy.extended.should_checkpoint:
        return _train(config, strategy, workdir, workdir, verbose)
    scratch = Path(tempfile.mkdtemp(prefix="prism-worker-"))
    try:
        return _train(config, strategy, workdir, scratch, verbose)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _train(config: ml_collections.ConfigDict, strategy: tf.distribute.Strategy,
           workdir: Path, outdir: Path, verbose: int) -> Dict[str, float]:
    """`train` writing to `outdir`: the workdir, or a non-chief worker's scratch
    folder (which resumes from the workdir's checkpoints all the same)."""
    train_split, test_split = runs.load_splits(config)
    checks.check_evaluation_split(test_split, config.eval.recall_at)
    preprocessing = factories.preprocessing(config).for_split(train_split)
    report = runs.data_report(config, train_split, test_split, preprocessing)
    # A resumed run must see the labels it started with (and the noise drawn
    # over the same samples).
    runs.check_recorded_data(workdir, report)
    keras.utils.set_random_seed(config.data.seed)
    # A run with a checkpoint resumes from it: the encoder's starting weights
    # (model.weights, model.init_from) are not needed again.
    latest = runs.latest_intact_checkpoint(workdir / "checkpoints")
    start = None if latest else runs.encoder_start(config)
    with strategy.scope():
        model = factories.build_model(config, train_split.num_classes, preprocessing.channels,
                                       start)

    classes_per_batch = config.train.batch_size // config.sampling.samples_per_class
    # Refuses impossible P x K batches before the workdir is claimed.
    class_balanced_indices(train_split.labels, classes_per_batch,
                           config.sampling.samples_per_class, config.data.seed)

    def batches_from(step: int):
        # The ground-truth flags as 0/1: under a strategy, Keras 3's fit
        # averages the first batch across replicas to build the model, which
        # fails on booleans (PrismModel reads either). Without ground truth
        # they stay out, and so do kept purity and noise recall.
        return train_dataset(
            train_split, classes_per_batch, config.sampling.samples_per_class, preprocessing,
            seed=config.data.seed, start_step=step, strict=config.data.strict,
        ).map(lambda images, y: (images, {"labels": y["labels"],
                                          "is_noisy": tf.cast(y["is_noisy"], tf.int32)}
                                 if train_split.ground_truth else {"labels": y["labels"]}))

    resuming = runs.claim_workdir(outdir, config)
    write_atomically(outdir / "data.json", json.dumps(report, indent=2))
    print("Config:", runs.config_to_json(config))
    print(data_message(train_split, test_split, config))
    print(noise_message(train_split, config))
    if start:
        # What the encoder started from, kept for good: a model.init_from run
        # may still be training, and a resumed run does not read it again.
        write_atomically(outdir / "encoder_start.json", json.dumps(start.record, indent=2))
        print(start.message(config.model.encoder))
    print(strategy_message(strategy, config))
    manager = runs.checkpoint_manager(model, outdir)
    removed = runs.remove_stale_checkpoints(manager)
    if removed:
        logging.info("Removed what an interrupted save left: %s", ", ".join(removed))
    if latest:
        manager.checkpoint.restore(latest).assert_existing_objects_matched()
        logging.info("Resuming from %s (step %d)", latest,
                     int(model.optimizer.iterations.numpy()))
    elif resuming:
        logging.info("No checkpoint yet in %s; starting from step 0", workdir)
    step = int(model.optimizer.iterations.numpy())
    if step >= config.train.steps and (workdir / "metrics.json").exists():
        try:
            metrics = json.loads((workdir / "metrics.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            # Not written by this project's atomic writes: evaluated again below.
            logging.warning("%s is damaged (%s); evaluating the last checkpoint again.",
                            workdir / "metrics.json", error)
        else:
            logging.info("%s has finished; its metrics:", workdir)
            print(json.dumps(metrics, indent=2))
            return metrics

    evaluation = RetrievalEvaluation(
        eval_dataset(test_split, config.eval.batch_size, preprocessing,
                     strict=config.data.strict),
        config.eval.recall_at)
    evaluation.set_model(model)   # also when no step is left to fit (resumed at the end)
    log_dir = str(outdir / "tensorboard")
    # TensorBoard before the checkpoint: once a checkpoint exists, its epoch's
    # scalars are on disk, so a run killed right after it loses none of them.
    callbacks = [evaluation, StepTensorBoard(log_dir),
                 StepScalars(f"{log_dir}/steps", config.train.scalars_every),
                 CheckpointAtEpochEnd(manager)]
    shown_test = fixed_sample(test_split, 512, preprocessing, config.data.seed)
    images, labels, is_noisy = fixed_sample(train_split, 512, preprocessing, config.data.seed)
    is_noisy = is_noisy if train_split.ground_truth else None
    callbacks.append(RetrievalExamples(shown_test[0], shown_test[1], log_dir,
                                       training_sample=(images, labels, is_noisy)))
    if model.selector is not None:
        callbacks.append(CleanProbabilityMonitor(images, labels, is_noisy, log_dir,
                                                 class_names=train_split.class_names))
    try:
        for steps_per_epoch, first_epoch, end_epoch in epochs(
                config.train.steps, config.train.eval_every, step):
            model.fit(batches_from(int(model.optimizer.iterations.numpy())),
                      steps_per_epoch=steps_per_epoch, epochs=end_epoch,
                      initial_epoch=first_epoch, verbose=verbose, callbacks=callbacks,
                      shuffle=False)   # the P x K sampler already shuffles
    except InvalidBatchError as error:
        kept = manager.latest_checkpoint or "none yet"
        raise InvalidBatchError(f"{error} Last good checkpoint: {kept}.") from None
    except (tf.errors.UnavailableError, tf.errors.AbortedError) as error:
        if config.train.strategy != "multi_worker":
            raise
        # The workdir's checkpoint: a non-chief worker saves to its scratch folder.
        resume_from = tf.train.latest_checkpoint(str(workdir / "checkpoints"))
        raise lost_worker_error(error, resume_from or "step 0") from None

    metrics = dict(evaluation.last or evaluation.evaluate())
    # From the checkpoint, so a run resumed after its last checkpoint reports
    # the same training figures as one that was never interrupted.
    last_epoch = json.loads(manager.checkpoint.epoch_logs.numpy().decode() or "{}")
    for name in ("kept_purity", "noise_recall", "kept_fraction", "noise_estimate",
                 "separability"):
        if name in last_epoch:
            metrics[name] = last_epoch[name]
    history = json.loads(manager.checkpoint.precision_at_1_history.numpy().decode() or "[]")
    # Flat keys (metrics.json stays one level): P@1 at every evaluation.
    metrics.update({f"precision_at_1_step_{step}": value for step, value in history})
    metrics["step"] = int(model.optimizer.iterations.numpy())
    write_atomically(outdir / "metrics.json",
                                json.dumps(metrics, indent=2, allow_nan=False))
    print(json.dumps(metrics, indent=2))
    return metrics


def data_message(train: ImageSplit, test: ImageSplit,
                 config: ml_collections.ConfigDict) -> str:
    """What a run prints about its images: sizes found, and what becomes of them."""
    options = config.preprocessing
    size = options.image_size
    flips = "random horizontal flips" if options.flip else "no flips"
    return (f"Images: {train.name} {runs.size_text(train)}, {test.name} {runs.size_text(test)}; "
            f"all resized to {size}x{size} (preprocessing.image_size). Training: random crops "
            f"of {tuple(options.crop_scale)} of the area (preprocessing.crop_scale), {flips} "
            f"(preprocessing.flip). Evaluation: shorter side to "
            f"{round(size * options.eval_resize)}, centre crop (preprocessing.eval_resize)."
            + "".join(f" Left out of {split.name}: {len(split.repeats_dropped)} images that "
                      f"repeat an earlier one (same file or bytes), e.g. "
                      f"{split.repeats_dropped[0]}; data.json lists them."
                      for split in (train, test) if split.repeats_dropped))


def noise_message(train: ImageSplit, config: ml_collections.ConfigDict) -> str:
    """One line saying whether label noise was injected, and how much, and
    what `data.verdicts` changed."""
    report = train.noise
    if report.kind == "none":
        known = (f"; {report.num_noisy} labels known to be wrong" if report.num_noisy else "")
        message = f"Labels of {train.name} used as given (no noise injected{known})."
    else:
        message = (
            f"Injected {report.kind} label noise into {train.name}: {report.num_noisy} of "
            f"{report.num_samples} labels ({report.realized_rate:.1%}) made wrong on purpose "
            f"(data.injected_noise.kind={report.kind}, rate={config.data.injected_noise.rate}; "
            "set data.injected_noise.kind=none to train on the labels as given).")
    if train.verdicts:
        verdicts = train.verdicts
        message += (f" Verdicts of {verdicts['file']} (data.verdicts): {verdicts['dropped']} "
                    f"samples dropped, {verdicts['relabelled']} relabelled; {len(train)} "
                    "train.")
    return message


def strategy_message(strategy: tf.distribute.Strategy,
                     config: ml_collections.ConfigDict) -> str:
    """One line saying where the training steps run."""
    if config.train.strategy == "default":
        return "Training on one device (train.strategy = 'default')."
    replicas, batch = strategy.num_replicas_in_sync, config.train.batch_size
    return (f"Training on {replicas} replicas (train.strategy = {config.train.strategy!r}; "
            f"this worker's devices: {', '.join(strategy.extended.worker_devices)}): "
            f"global batch {batch}, {batch // replicas} per replica.")


def epochs(steps: int, eval_every: int, step: int) -> List[Tuple[int, int, int]]:
    """The `fit` calls that take a run from `step` to `steps`: (steps per
    epoch, initial epoch, final epoch) each. An epoch is `eval_every` steps;
    when that does not divide `steps`, a last, shorter epoch ends the run.

    >>> epochs(600, 200, 0)
    [(200, 0, 3)]
    >>> epochs(500, 200, 200)
    [(200, 1, 2), (100, 2, 3)]
    >>> epochs(500, 200, 400)
    [(100, 2, 3)]
    """
    whole = steps // eval_every
    calls = []
    if step < whole * eval_every:
        calls.append((eval_every, step // eval_every, whole))
    if steps % eval_every and step < steps:
        calls.append((steps % eval_every, whole, whole + 1))
    return calls


def main(argv):
    del argv
    if FLAGS.config is None or not FLAGS.workdir:
        raise app.UsageError("--config and --workdir are required")
    with cli.one_line_errors():
        train(FLAGS.config, FLAGS.workdir, cli.progress_verbosity(FLAGS.verbose))


def run() -> None:
    """The `prism-tf-train` command."""
    cli.run(main, _define_flags)


if __name__ == "__main__":
    run()
