"""PrismModel and the pipelines under tf.distribute.

MirroredStrategy runs on the two logical CPUs that conftest.py makes; the
multi-worker run uses two local processes. Each distributed run is compared
with one device on the same global batches.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from configs import default
from pipelines import checks, factories, runs
from pipelines.evaluate import evaluate
from pipelines.train import train
from prism_tf import MemoryBank, PrismModel, PrismSelector, cluster, compat, losses
from prism_tf.model import InvalidBatchError
from prism_tf.proxy_losses import SoftTripleLoss
from prism_tf.replicas import GlobalBatch, embed_on_replicas
from prism_tf.selector import NO_GUARDS

ROOT = Path(__file__).resolve().parents[1]
CLASSES, DIM, BATCH = 4, 8, 16


def _mirrored():
    """The process's MirroredStrategy over the two logical CPUs (one per
    process: see factories.distribution_strategy)."""
    strategy = factories.distribution_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    return strategy


def _model(strategy, batch_loss=None, memory_start_step=0, proxysim=False):
    """With `proxysim`: SoftTriple on its own optimizer, PRISM scoring with its proxies."""
    with strategy.scope():
        keras.utils.set_random_seed(0)
        encoder = keras.Sequential([keras.Input((12,)), keras.layers.Dense(16, activation="relu"),
                                    keras.layers.Dense(DIM)])
        if proxysim:
            batch_loss = SoftTripleLoss(CLASSES, DIM, centers_per_class=2)
        model = PrismModel(encoder, MemoryBank(64, DIM, CLASSES),
                           # The authors' selector: selecting from the first steps.
                           PrismSelector(0.25, window_size=3,
                                         scoring="proxies" if proxysim else "centers",
                                         **NO_GUARDS),
                           batch_loss=batch_loss, memory_start_step=memory_start_step)
        model.compile(optimizer=keras.optimizers.Adam(1e-2),
                      proxy_optimizer=keras.optimizers.Adam(0.05) if proxysim else None)
    return model


def _data(n=128, weighted=False, bad_label_at=None):
    """Clustered points with 30% wrong labels; ground truth as 0/1 (see
    pipelines.train: Keras 3 cannot build from boolean inputs under a strategy)."""
    rng = np.random.default_rng(0)
    truth = rng.integers(0, CLASSES, n)
    x = (rng.normal(size=(CLASSES, 12))[truth] * 2 + rng.normal(size=(n, 12))).astype("float32")
    is_noisy = rng.random(n) < 0.3
    labels = np.where(is_noisy, (truth + 1) % CLASSES, truth).astype("int32")
    if bad_label_at is not None:
        labels[bad_label_at] = CLASSES
    y = {"labels": labels, "is_noisy": is_noisy.astype("int32")}
    elements = (x, y, rng.uniform(0.5, 1.5, n).astype("float32")) if weighted else (x, y)
    return tf.data.Dataset.from_tensor_slices(elements).batch(BATCH, drop_remainder=True)


class _StepLogs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.steps = []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append({name: float(value) for name, value in logs.items()})


def _state(model):
    """Encoder, memory bank, selector and proxy values, in order."""
    proxies = model.batch_loss.weights if isinstance(model.batch_loss, SoftTripleLoss) else []
    return [np.asarray(v.numpy(), np.float64) for v in
            model.encoder.weights + model.memory_bank.weights + model.selector.weights + proxies]


def _copies(variable):
    """Every replica's copy of a (mirrored) model variable."""
    tf_variable = compat.tf_variable(variable)
    return [np.asarray(v.numpy()) for v in getattr(tf_variable, "values", [tf_variable])]


@pytest.mark.parametrize("case", ["mcl", "semihard_weighted", "memory_from_step_3",
                                  "proxysim"])
def test_two_replicas_train_as_one_device_on_the_same_global_batches(case):
    kwargs = {"mcl": {}, "semihard_weighted": {"batch_loss": losses.TripletSemiHardLoss()},
              "memory_from_step_3": {"memory_start_step": 3},
              "proxysim": {"proxysim": True}}[case]
    runs = {}
    for name, strategy in (("one", tf.distribute.get_strategy()), ("two", _mirrored())):
        model, logs = _model(strategy, **kwargs), _StepLogs()
        model.fit(_data(weighted=case == "semihard_weighted"), epochs=2, verbose=0,
                  callbacks=[logs])
        runs[name] = model, logs.steps
    (one, one_steps), (two, two_steps) = runs["one"], runs["two"]
    assert two.distribute_strategy.num_replicas_in_sync == 2 and len(two_steps) == 16
    # The same samples kept and the same windows at every step.
    for name in ("kept_fraction", "kept_purity", "noise_recall", "threshold",
                 "noise_estimate", "separability", "memory_fill"):
        assert [s[name] for s in two_steps] == pytest.approx([s[name] for s in one_steps],
                                                               abs=1e-6), name
    for name in ("loss", "batch_loss", "memory_loss"):
        assert [s[name] for s in two_steps] == pytest.approx([s[name] for s in one_steps],
                                                               rel=1e-4, abs=1e-5), name
    assert 0 < one_steps[-1]["kept_fraction"] < 1
    one_state, two_state = _state(one), _state(two)
    assert len(one_state) == len(two_state) == 4 + 5 + 7 + (case == "proxysim")
    for index, (value, other) in enumerate(zip(one_state, two_state)):
        np.testing.assert_allclose(other, value, rtol=1e-4, atol=1e-5, err_msg=str(index))
    assert int(two.optimizer.iterations.numpy()) == 16
    if case == "proxysim":
        assert int(two.proxy_optimizer.iterations.numpy()) == 16
    # Every replica wrote the same rows into its copy of the memory.
    for variable in two.memory_bank.weights + two.selector.weights:
        first, *others = _copies(variable)
        assert len(others) == 1 and all(np.array_equal(first, other) for other in others)


def test_a_bad_label_on_one_replica_refuses_the_step_on_every_replica():
    # Step 3's sample 12 is in the second replica's half of the batch.
    model = _model(_mirrored())
    with pytest.raises(InvalidBatchError, match="training step 3 refused: labels outside"):
        model.fit(_data(bad_label_at=2 * BATCH + 12), epochs=1, verbose=0)
    reference = _model(tf.distribute.get_strategy())
    reference.fit(_data().take(2), epochs=1, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 2
    for variable, expected in zip(model.memory_bank.weights, reference.memory_bank.weights):
        for copy in _copies(variable):
            np.testing.assert_allclose(copy, expected.numpy(), rtol=1e-4, atol=1e-5)


def test_global_batch_gathers_in_replica_order_and_gives_back_own_rows():
    strategy = _mirrored()

    @tf.function
    def step(values):
        def on_replica(local):
            batch = GlobalBatch(tf.size(local))
            gathered = batch.gather(local)
            return gathered, batch.own_rows(gathered), batch.sum(tf.reduce_sum(local))
        return strategy.run(on_replica, args=(values,))

    values = strategy.experimental_distribute_values_from_function(
        lambda context: tf.range(3) + 10 * context.replica_id_in_sync_group)
    gathered, own, total = (strategy.experimental_local_results(t) for t in step(values))
    assert [g.numpy().tolist() for g in gathered] == [[0, 1, 2, 10, 11, 12]] * 2
    assert [o.numpy().tolist() for o in own] == [[0, 1, 2], [10, 11, 12]]
    assert [int(t) for t in total] == [36, 36]


def test_embedding_on_replicas_keeps_the_row_order():
    strategy = _mirrored()
    with strategy.scope():
        dense = keras.layers.Dense(3)
        dense.build((None, 5))
    images = tf.random.normal([7, 5])   # odd: the replicas get 3 and 4 rows
    embed = embed_on_replicas(strategy, lambda x: dense(x))
    np.testing.assert_allclose(embed(images).numpy(), dense(images).numpy(), rtol=1e-6)


def _pipeline_config(strategy):
    config = default.get_config()
    config.train.steps, config.train.eval_every, config.train.strategy = 20, 10, strategy
    return config


def test_train_pipeline_runs_mirrored_as_on_one_device(tmp_path):
    one = train(_pipeline_config("default"), str(tmp_path / "one"), verbose=0)
    two = train(_pipeline_config("mirrored"), str(tmp_path / "two"), verbose=0)
    assert two["step"] == 20
    for name in ("kept_fraction", "kept_purity", "noise_estimate"):
        assert two[name] == pytest.approx(one[name], abs=1e-6), name
    assert two["precision_at_1"] == pytest.approx(one["precision_at_1"], abs=0.01)
    # Evaluation restores the checkpoint under the run's strategy.
    evaluated = evaluate(str(tmp_path / "two"))
    assert evaluated["precision_at_1"] == pytest.approx(two["precision_at_1"], abs=1e-6)


def test_mirrored_on_a_single_device_trains_as_the_default_strategy(tmp_path):
    # A one-GPU (or one-CPU) machine: MirroredStrategy with one replica still
    # synchronises in apply_gradients. A process of its own: this one's CPU is
    # split in two, and one MirroredStrategy per process (factories.distribution_strategy).
    metrics, outputs = {}, {}
    for strategy in ("default", "mirrored"):
        result = subprocess.run(
            [sys.executable, "-m", "pipelines.train", "--config=configs/default.py",
             f"--workdir={tmp_path / strategy}", "--config.train.steps=6",
             "--config.train.eval_every=3", f"--config.train.strategy={strategy}",
             "--verbose=0"],
            cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, capture_output=True,
            text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
        metrics[strategy] = json.loads((tmp_path / strategy / "metrics.json").read_text())
        outputs[strategy] = result.stdout
    assert "Training on 1 replicas (train.strategy = 'mirrored'" in outputs["mirrored"]
    for name in ("kept_fraction", "kept_purity", "noise_estimate"):
        assert metrics["mirrored"][name] == pytest.approx(metrics["default"][name], abs=1e-6)
    assert metrics["mirrored"]["precision_at_1"] == pytest.approx(
        metrics["default"]["precision_at_1"], abs=0.01)


def test_a_batch_the_replicas_cannot_share_evenly_is_refused_before_the_workdir(tmp_path):
    config = _pipeline_config("mirrored")
    config.train.batch_size, config.sampling.samples_per_class = 33, 3
    with pytest.raises(checks.ConfigError, match="a multiple of the 2 replicas"):
        train(config, str(tmp_path / "run"), verbose=0)
    assert not (tmp_path / "run").exists()


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start_workers(workdir, scratch, steps, *flags, count=2):
    """The first `count` workers of a two-worker MultiWorkerMirrored run, started."""
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(count):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_CONFIG": json.dumps(tf_config),
               "TMPDIR": str(scratch)}
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "pipelines.train", "--config=configs/default.py",
             f"--workdir={workdir}", "--config.train.strategy=multi_worker",
             f"--config.train.steps={steps}", "--config.train.eval_every=10", *flags],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return processes


def _results(processes):
    """Each worker's (returncode, stderr), once all have ended."""
    results = []
    for process in processes:
        try:
            _, stderr = process.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            raise
        results.append((process.returncode, stderr))
    return results


def _run_workers(workdir, scratch, steps):
    """Two local workers of one MultiWorkerMirrored run; their (returncode, stderr)."""
    return _results(_start_workers(workdir, scratch, steps))


def _assert_as_on_one_device(metrics, steps, workdir):
    """The selection and P@1 of a two-worker run are those of one device."""
    config = _pipeline_config("default")
    config.train.steps = steps
    one = train(config, str(workdir), verbose=0)
    for name in ("kept_fraction", "kept_purity", "noise_estimate"):
        assert metrics[name] == pytest.approx(one[name], abs=1e-5), name
    assert metrics["precision_at_1"] == pytest.approx(one["precision_at_1"], abs=0.01)


def test_a_worker_refuses_another_experiments_workdir_as_the_chief_does(tmp_path):
    workdir = tmp_path / "run"
    runs.claim_workdir(workdir, _pipeline_config("multi_worker"))
    for returncode, stderr in _run_workers(workdir, tmp_path, steps=30):
        assert returncode != 0
        assert "differing keys: train.steps (20 -> 30)" in stderr


@pytest.mark.skipif(not cluster.BOUNDED_WAIT, reason="TF 2.15 waits for its workers "
                    "without a deadline (prism_tf.cluster)")
def test_a_worker_that_never_starts_is_named_after_the_connect_timeout(tmp_path):
    (returncode, stderr), = _results(_start_workers(
        tmp_path / "run", tmp_path, 30, "--config.train.connect_timeout_s=3", count=1))
    assert returncode == 1
    assert stderr.strip().splitlines()[-1].startswith(
        "error: train.strategy=multi_worker (worker 0): worker 1 (127.0.0.1:")
    assert "did not connect within 3 s (train.connect_timeout_s)" in stderr
    assert not (tmp_path / "run").exists()


def test_a_worker_stopped_mid_run_is_one_line_and_the_restarted_pair_resumes(tmp_path):
    workdir, scratch = tmp_path / "run", tmp_path / "scratch"
    scratch.mkdir()
    chief, worker = processes = _start_workers(workdir, scratch, 20)
    while not (workdir / "checkpoints" / "ckpt-10.index").exists():
        assert chief.poll() is None and worker.poll() is None, _results(processes)
        time.sleep(0.05)
    worker.terminate()   # SIGTERM stops a connected worker (TensorFlow's notifier took it)
    (chief_code, chief_err), (worker_code, _) = _results(processes)
    assert worker_code == -signal.SIGTERM
    assert chief_code == 1
    last = chief_err.strip().splitlines()[-1]
    assert last.startswith("error: train.strategy=multi_worker (worker 0): worker 1 "
                           "(127.0.0.1:") and "stopped mid-run (" in last, chief_err[-3000:]
    assert last.rsplit(" ", 1)[1].startswith(f"{workdir / 'checkpoints'}/ckpt-")
    assert not (workdir / "metrics.json").exists()
    # What the stopped worker left in its temporary folder (TF 2.15: autograph
    # files) stays; the restarted pair removes all of its own.
    left_by_the_stop = set(scratch.iterdir())
    for returncode, stderr in _run_workers(workdir, scratch, steps=20):
        assert returncode == 0, stderr[-3000:]
        assert "Resuming from" in stderr
    assert set(scratch.iterdir()) <= left_by_the_stop   # the other worker's scratch is gone
    # Each worker trained on its half of every global batch, before and after
    # the restart: as one device on the same batches, uninterrupted.
    _assert_as_on_one_device(json.loads((workdir / "metrics.json").read_text()), 20,
                             tmp_path / "one")
