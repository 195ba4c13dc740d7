import contextlib
import hashlib
import json
import os
import shutil
import socket
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from configs import default
from tests import serving
from pipelines import checks, factories, runs
from pipelines.evaluate import evaluate
from pipelines.export import export_run
from prism_tf import losses
from prism_tf.proxy_losses import PROXY_LOSSES
from prism_tf.data.pipeline import eval_dataset
from prism_tf.model import InvalidBatchError
from prism_tf.search import GalleryIndex, leave_one_out_recall
from pipelines.train import train
from prism_tf.monitoring import PROJECTOR_TENSOR

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--config.train.steps=40", "--config.train.eval_every=20"]


def _small_config():
    config = default.get_config()
    config.train.steps, config.train.eval_every = 40, 20
    return config


def _train_command(workdir, *overrides):
    return [sys.executable, "-m", "pipelines.train", "--config=configs/default.py",
            f"--workdir={workdir}", *SMALL, *overrides]


def _run(command, **kwargs):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600, **kwargs)


@contextlib.contextmanager
def tensorboard_server(logdir: Path):
    """The real `tensorboard` on a free 127.0.0.1 port; yields get(path) -> JSON."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "tensorboard"), f"--logdir={logdir}",
         "--host=127.0.0.1", f"--port={port}", "--reload_interval=0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def get(path):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as answer:
            return json.loads(answer.read())

    try:
        deadline = time.time() + 120
        while True:
            try:
                if get("/data/runs"):
                    break
            except OSError:
                pass
            assert server.poll() is None and time.time() < deadline, "tensorboard did not start"
            time.sleep(0.5)
        yield get
    finally:
        server.terminate()
        server.wait(timeout=30)


def _scalar_tags(event_dir: Path):
    tags = set()
    for path in event_dir.rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            tags.update(value.tag for value in event.summary.value)
    return tags


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    metrics = train(_small_config(), str(workdir), verbose=0)
    return workdir, metrics


def test_a_run_writes_config_data_checkpoints_metrics_and_tensorboard(finished_run):
    workdir, metrics = finished_run
    assert json.loads((workdir / "config.json").read_text())["train"]["steps"] == 40
    data = json.loads((workdir / "data.json").read_text())
    fingerprint = data["train"].pop("fingerprint")
    assert data["train"] == {"name": "synthetic/train", "classes": 100, "samples": 4000,
                             "image_sizes": "32x32", "skipped_undecodable": [],
                             "repeats_dropped": []}
    train_split = runs.load_splits(_small_config())[0]
    assert fingerprint == runs.fingerprint(train_split)
    assert data["config_sha256"] == hashlib.sha256(
        (workdir / "config.json").read_bytes()).hexdigest()
    assert data["noise"]["realized_rate"] == 0.5 and data["noise"]["requested_rate"] == 0.5
    saved = json.loads((workdir / "metrics.json").read_text())
    assert saved == pytest.approx(metrics)
    for name in ("precision_at_1", "recall_at_8", "r_precision", "map_at_r",
                 "kept_purity", "noise_recall"):
        assert 0.0 <= saved[name] <= 1.0, name
    assert saved["step"] == 40
    # P@1 of every evaluation, the last being the final one.
    assert saved["precision_at_1_step_40"] == saved["precision_at_1"]
    assert 0.0 <= saved["precision_at_1_step_20"] <= 1.0
    assert 0.0 <= saved["noise_estimate"] <= 1.0
    assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-40")
    assert {"epoch_loss", "epoch_batch_loss", "epoch_kept_fraction", "epoch_kept_purity",
            "epoch_noise_recall", "epoch_threshold", "epoch_noise_estimate", "epoch_memory_fill",
            "epoch_learning_rate"} <= _scalar_tags(workdir / "tensorboard" / "train")
    assert {"epoch_precision_at_1", "epoch_recall_at_8", "epoch_r_precision",
            "epoch_map_at_r"} <= _scalar_tags(workdir / "tensorboard" / "validation")
    assert {"clean_probability/all", "clean_probability/noisy", "clean_probability/clean",
            "most_often_rejected"} <= _scalar_tags(workdir / "tensorboard" / "prism")
    assert "queries_and_top5" in _scalar_tags(workdir / "tensorboard" / "retrieval")


def test_the_projector_holds_the_evaluation_embeddings(finished_run):
    projector_dir = finished_run[0] / "tensorboard" / "retrieval"
    config = (projector_dir / "projector_config.pbtxt").read_text()
    assert 'metadata_path: "metadata.tsv"' in config and 'image_path: "sprite.png"' in config
    embeddings = tf.train.load_variable(tf.train.latest_checkpoint(str(projector_dir)),
                                        PROJECTOR_TENSOR)
    header, *rows = (projector_dir / "metadata.tsv").read_text().splitlines()
    rows = [row.split("\t") for row in rows]
    # 512 evaluation rows, then 512 training rows with the ground truth of
    # their (50% wrong) labels.
    assert header == "split\tlabel\twrong_label"
    assert embeddings.shape == (1024, 64) and len(rows) == 1024
    assert {r[0] for r in rows[:512]} == {"test"} and {r[2] for r in rows[:512]} == {"-"}
    assert {r[0] for r in rows[512:]} == {"train"}
    assert 0.35 < np.mean([r[2] == "yes" for r in rows[512:]]) < 0.65
    assert {r[2] for r in rows[512:]} == {"yes", "no"}
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)
    sprite = tf.io.decode_png((projector_dir / "sprite.png").read_bytes())
    assert sprite.shape == (32 * 32, 32 * 32, 3)  # ceil(sqrt(1024)) thumbnails a side


def test_killed_run_resumes_to_the_same_result(finished_run, tmp_path):
    workdir = tmp_path / "killed"
    process = subprocess.Popen(_train_command(workdir), cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    deadline = time.time() + 300
    # Killed once the first checkpoint is complete (its index file names it).
    while tf.train.latest_checkpoint(str(workdir / "checkpoints")) is None:
        assert process.poll() is None and time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (workdir / "metrics.json").exists()
    # What a kill during a save leaves: a temp folder and an unlisted checkpoint.
    (workdir / "checkpoints" / "ckpt-40_temp").mkdir()
    (workdir / "checkpoints" / "ckpt-40_temp" / "part-00000-of-00001.index").write_bytes(b"x")
    (workdir / "checkpoints" / "ckpt-40.index").write_bytes(b"x")
    result = _run(_train_command(workdir))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Resuming from" in result.stderr
    # Output to a file: one line per epoch, no progress bar, no library chatter.
    assert "\r" not in result.stdout and "━" not in result.stdout
    assert result.stdout.count("20/20 - ") == 1
    for chatter in ("Sharding callback duration", "shuffle=True"):
        assert chatter not in result.stderr
    resumed = json.loads((workdir / "metrics.json").read_text())
    assert resumed == json.loads((finished_run[0] / "metrics.json").read_text())
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == [
        "checkpoint", "ckpt-20.data-00000-of-00001", "ckpt-20.index",
        "ckpt-40.data-00000-of-00001", "ckpt-40.index"]
    # TensorBoard, as its server shows it: every scalar at its optimizer step,
    # the killed run's and the resumed run's events on one axis.
    with tensorboard_server(workdir / "tensorboard") as get:
        assert {"train", "validation", "prism", "retrieval", "steps"} <= set(get("/data/runs"))
        for run, tag in (("train", "epoch_loss"), ("validation", "epoch_precision_at_1")):
            points = get(f"/data/plugin/scalars/scalars?run={run}&tag={tag}")
            assert sorted({step for _, step, _ in points}) == [20, 40], (run, tag, points)
        # The step's logs every train.scalars_every (10) steps, each a mean
        # over the steps since the point before.
        for tag in ("kept_fraction", "noise_estimate", "separability", "memory_fill",
                    "kept_purity"):
            points = get(f"/data/plugin/scalars/scalars?run=steps&tag={tag}")
            assert sorted({step for _, step, _ in points}) == [10, 20, 30, 40], (tag, points)
            assert all(0.0 <= value <= 1.0 for _, _, value in points), (tag, points)
        # Every scalar tag says what it is.
        tags = get("/data/plugin/scalars/tags")
        for run in ("train", "validation", "steps"):
            assert tags[run], run
            for tag, about in tags[run].items():
                assert len(about["description"]) > 20, (run, tag, about)
        assert "estimated ROC AUC" in tags["steps"]["separability"]["description"]
        # The clean and the noisy samples' histograms share one range: label
        # ranks on [0, 1], clean probabilities on [0, their largest].
        for quantity in ("label_rank", "clean_probability"):
            edges = {}
            for group in ("clean", "noisy"):
                tag = f"{quantity}/{group}"
                (_, step, buckets), *_ = get(
                    f"/data/plugin/histograms/histograms?run=prism&tag={tag}")[::-1]
                assert step == 40, (tag, step)
                edges[group] = [(left, right) for left, right, _ in buckets]
            assert edges["clean"] == edges["noisy"], quantity
            assert edges["clean"][0][0] == 0.0
            if quantity == "label_rank":
                assert edges["clean"][-1][1] == 1.0
        assert "retrieval" in get("/data/plugin/projector/runs")


def test_a_workdir_of_another_experiment_is_refused_untouched(finished_run):
    workdir = finished_run[0]
    before = {p: p.stat().st_mtime_ns for p in workdir.rglob("*") if p.is_file()}
    result = _run(_train_command(workdir, "--config.data.injected_noise.rate=0.2"))
    assert result.returncode != 0
    assert "holds a different experiment" in result.stderr
    assert "data.injected_noise.rate (0.5 -> 0.2)" in result.stderr
    assert before == {p: p.stat().st_mtime_ns for p in workdir.rglob("*") if p.is_file()}


@pytest.mark.parametrize("key,value,match", [
    ("data.injected_noise.rate", 1.5,
     r"config.data.injected_noise.rate = 1.5: expected a rate in \[0, 1\)"),
    ("selector.noise_rate", -0.1, r"config.selector.noise_rate = -0.1"),
    ("memory.size", 32, r"config.memory.size = 32: expected at least train.batch_size \(64\)"),
    ("loss.name", "arcface", r"config.loss.name = 'arcface'"),
    ("train.proxy_learning_rate", 0.0,
     r"config.train.proxy_learning_rate = 0.0: expected a learning rate"),
    ("train.eval_every", 0, r"config.train.eval_every = 0: expected a positive number"),
    ("train.scalars_every", 0, r"config.train.scalars_every = 0: expected a positive number"),
    ("train.learning_rate", 0.0, r"config.train.learning_rate = 0.0: expected a learning rate"),
    ("train.learning_rate", 30.0, r"config.train.learning_rate = 30.0: expected a learning rate"),
    ("preprocessing.std", (0.0, 0.0, 0.0),
     r"config.preprocessing.std = \(0.0, 0.0, 0.0\): expected values > 0"),
    ("eval.recall_at", (0,), r"config.eval.recall_at = \(0,\): expected integers >= 1"),
    ("eval.batch_size", 0, r"config.eval.batch_size = 0: expected a positive batch size"),
    ("preprocessing.eval_resize", 0.5,
     r"config.preprocessing.eval_resize = 0.5: expected a factor >= 1"),
    ("preprocessing.crop_scale", (0.0, 1.0),
     r"config.preprocessing.crop_scale = \(0.0, 1.0\): expected \(low, high\)"),
    ("data.source", "folder",
     r"config.data.folder.data_dir = '': expected the folder of your class folders"),
    ("data.source", "npz", r"config.data.source = 'npz': expected one of \['csv', "),
    ("data.injected_noise.kind", "uniform", r"config.data.injected_noise.kind = 'uniform'"),
    ("model.weights", "no/such.weights.h5",
     r"config.model.weights = 'no/such.weights.h5': expected '', 'imagenet' or an existing"),
    ("model.init_from", "no/such/run",
     r"config.model.init_from = 'no/such/run': expected '' or an existing training workdir"),
    # Each of these was accepted, or failed after the workdir was claimed.
    ("memory.weight", -1.0, r"config.memory.weight = -1.0: expected a weight >= 0"),
    ("memory.weight", float("nan"), r"config.memory.weight = nan: expected finite numbers"),
    ("loss.mcl.margin", float("nan"), r"config.loss.mcl.margin = nan: expected finite"),
    ("preprocessing.mean", (0.5, float("inf"), 0.5),
     r"config.preprocessing.mean = \(0.5, inf, 0.5\)"),
    ("train.batch_size", 0, r"config.train.batch_size = 0: expected a positive batch size"),
    ("train.connect_timeout_s", 0.0, r"config.train.connect_timeout_s = 0.0: expected a "
                                     "positive number of seconds"),
    ("preprocessing.crop_scale", (0.5,),
     r"config.preprocessing.crop_scale = \(0.5,\): expected \(low, high\)"),
    ("data.seed", -1, r"config.data.seed = -1: expected an integer >= 0"),
    ("selector.min_separability", 0.4,
     r"config.selector.min_separability = 0.4: expected a value in \[0.5, 1\]"),
    ("sampling.samples_per_class", 1,
     r"config.sampling.samples_per_class = 1: expected at least 2: the pair and triplet"),
    ("eval.recall_at", (1, 100000),
     r"config.eval.recall_at = \(1, 100000\): expected values below 3999, the other images"),
])
def test_bad_config_values_are_refused_before_any_work(tmp_path, key, value, match):
    config = _small_config()
    section, name = key.rsplit(".", 1)
    parent = config
    for part in section.split("."):
        parent = parent[part]
    parent[name] = value
    with pytest.raises(checks.ConfigError, match=match):
        train(config, str(tmp_path / "w"))
    assert not (tmp_path / "w").exists()


def test_unknown_config_key_is_refused(tmp_path):
    result = _run(_train_command(tmp_path / "w", "--config.train.stepz=5"))
    assert result.returncode != 0 and "stepz" in result.stderr
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("name", ["default", "fashion_mnist", "cars196", "cub200", "sop", "cars98n",
                                  "noise_benchmark", "synthetic_pretraining"])
def test_every_config_has_the_shared_keys_and_passes_its_checks(name):
    module = __import__(f"configs.{name}", fromlist=["get_config"])
    config = module.get_config()
    for key in ("train.steps", "train.batch_size", "data.injected_noise.kind",
                "data.injected_noise.rate", "data.seed", "selector.noise_rate",
                "selector.window_size", "selector.scoring", "memory.size", "memory.weight",
                "memory.start_step", "loss.name"):
        section, field = key.rsplit(".", 1)
        parent = config
        for part in section.split("."):
            parent = parent[part]
        assert field in parent, key
    checks.check_config(config)


def test_evaluate_checkpoint_and_exported_model_reproduce_the_run(finished_run, tmp_path):
    workdir, metrics = finished_run
    result = _run([sys.executable, "-m", "pipelines.export", f"--workdir={workdir}",
                   f"--export_dir={tmp_path / 'models'}", "--tflite"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "models" / "1" / "saved_model.pb").exists()
    assert (tmp_path / "models" / "1" / "model.tflite").stat().st_size > 0
    from_checkpoint = evaluate(str(workdir))
    from_export = evaluate(str(workdir), saved_model=str(tmp_path / "models" / "1"))
    for name in ("precision_at_1", "recall_at_8", "r_precision", "map_at_r"):
        assert from_checkpoint[name] == pytest.approx(metrics[name], abs=1e-9), name
        assert from_export[name] == pytest.approx(metrics[name], abs=1e-3), name


def test_the_exports_search_finds_what_evaluate_measures(finished_run, tmp_path):
    """prism-tf-index on the run's evaluation split, exported with --index:
    the `search` signature, as TF Serving loads it, gives evaluate's recall."""
    workdir, metrics = finished_run
    result = _run([sys.executable, "-m", "pipelines.index", f"--workdir={workdir}",
                   f"--output={tmp_path / 'index'}", "--shard_rows=50"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "indexed" in result.stdout
    path = export_run(str(workdir), str(tmp_path / "models"), index=str(tmp_path / "index"),
                      search_k=9)
    run = runs.Run(str(workdir))
    test_split = run.splits()[1]
    images = np.concatenate([batch for batch, _ in eval_dataset(
        test_split, 64, factories.preprocessing(run.config))])
    with serving.tf1_loaded(path) as predict:
        rows = predict("search", {"images": images}, output="rows")
        paths = predict("search", {"images": images[:2]}, output="paths")
    assert rows.shape == (len(test_split), 9)
    assert (paths == b"").all()   # the built-in set's images are in memory, not files
    found = leave_one_out_recall(rows, test_split.labels, run.config.eval.recall_at)
    for name, value in found.items():
        # Near ties among neighbours may order differently: the export embeds
        # through the SavedModel and sums the dot products shard by shard, in
        # another order than evaluate's on some CPUs (one query in 4,000 on
        # CI's AMD machine); as the export's evaluate above, within 1e-3.
        assert value == pytest.approx(metrics[name], abs=1e-3), name


def test_a_gallery_folder_or_csv_is_indexed_with_its_paths(finished_run, tmp_path):
    from pipelines.index import index_gallery
    from tests import data_helpers

    workdir, _ = finished_run
    folder = data_helpers.image_folder(tmp_path / "gallery", images_per_class=(2, 3))
    damaged = data_helpers.damage_png_body(folder / "class_1" / "img_1.png")
    index = GalleryIndex.load(index_gallery(str(workdir), str(folder)))
    assert index.source == str(folder) and len(index) == 4   # the damaged one left out
    assert str(damaged) not in index.paths.tolist()
    assert sorted(index.paths.tolist()) == sorted(
        str(p) for p in folder.rglob("img_*") if p != damaged)
    assert index.labels.tolist() == [0, 0, 1, 1]
    # The same images as a CSV under a root, into another folder; the index
    # replaces what is there.
    (tmp_path / "list.csv").write_text("".join(
        f"{p.relative_to(folder)},{p.parent.name[-1]}\n" for p in sorted(folder.rglob("img_*"))
        if p != damaged))
    output = tmp_path / "csv-index"
    (output / "stale").mkdir(parents=True)
    index_gallery(str(workdir), str(tmp_path / "list.csv"), str(folder), str(output))
    assert sorted(p.name for p in output.iterdir()) == ["embeddings.npy", "index.json",
                                                        "labels.npy"]
    assert GalleryIndex.load(output).paths.tolist() == index.paths.tolist()
    with pytest.raises(ValueError, match=r"cannot be decoded: .*img_1.png"):
        index_gallery(str(workdir), str(folder), output=str(tmp_path / "strict"), strict=True)
    assert not (tmp_path / "strict").exists()
    result = _run([sys.executable, "-m", "pipelines.index", f"--workdir={workdir}",
                   f"--gallery={tmp_path / 'nothing'}"])
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: --gallery={tmp_path / 'nothing'}: no such folder or CSV file")


def _back_to_step_20(finished, workdir: Path) -> Path:
    """A copy of the finished run as a kill after its first checkpoint leaves it."""
    shutil.copytree(finished, workdir)
    checkpoints = workdir / "checkpoints"
    for path in checkpoints.glob("ckpt-40.*"):
        path.unlink()
    (workdir / "metrics.json").unlink()
    tf.compat.v1.train.update_checkpoint_state(str(checkpoints), str(checkpoints / "ckpt-20"),
                                     [str(checkpoints / "ckpt-20")])
    return workdir


def test_an_unfinished_run_is_exported_only_when_allowed(finished_run, tmp_path):
    workdir = _back_to_step_20(finished_run[0], tmp_path / "unfinished")
    with pytest.raises(checks.ConfigError, match="at step 20 of 40: not finished"):
        export_run(str(workdir), str(tmp_path / "models"))
    assert not (tmp_path / "models" / "1").exists()
    assert export_run(str(workdir), str(tmp_path / "models"), allow_unfinished=True).name == "1"


def test_evaluate_and_export_refuse_a_folder_that_is_no_run(tmp_path):
    with pytest.raises(checks.ConfigError, match="not a training workdir: no config.json"):
        evaluate(str(tmp_path))
    result = _run([sys.executable, "-m", "pipelines.export", f"--workdir={tmp_path}",
                   f"--export_dir={tmp_path / 'models'}"])
    assert result.returncode != 0 and "not a training workdir" in result.stderr


@pytest.mark.parametrize("name", sorted({**losses.LOSSES, **PROXY_LOSSES}))
def test_every_loss_name_builds_its_loss(name):
    config = _small_config()
    config.loss.name = name
    model = factories.build_model(config, 10, 3, runs.encoder_start(config))
    assert isinstance(model.batch_loss, {**losses.LOSSES, **PROXY_LOSSES}[name])
    for argument, value in config.loss[name].items():
        assert model.batch_loss.get_config()[argument] == value, argument
    # Proxies learn on their own optimizer, at their own rate.
    assert (model.proxy_optimizer is not None) == (name in PROXY_LOSSES)


@pytest.mark.parametrize("dropped_as_negatives", [True, False])
def test_the_config_says_whether_dropped_samples_stay_negatives(dropped_as_negatives):
    config = _small_config()
    config.loss.dropped_as_negatives = dropped_as_negatives
    model = factories.build_model(config, 10, 3, runs.encoder_start(config))
    assert model.dropped_as_negatives is dropped_as_negatives
    # The paper recipes keep the authors' step: a dropped sample leaves the batch loss.
    from configs import cars196
    assert cars196.get_config().loss.dropped_as_negatives is False


def test_a_proxysim_run_checkpoints_its_proxies_and_their_optimizer(tmp_path):
    config = _small_config()
    config.loss.name, config.selector.scoring = "soft_triple", "proxies"
    config.loss.soft_triple.centers_per_class = 2
    metrics = train(config, str(tmp_path), verbose=0)
    assert np.isfinite([metrics["precision_at_1"], metrics["noise_estimate"]]).all()
    _, model = runs.Run(str(tmp_path)).restore()
    assert int(model.proxy_optimizer.iterations.numpy()) == 40
    checkpoint = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    saved = [name for name, _ in tf.train.list_variables(checkpoint)
             if "proxies" in name and "OPTIMIZER_SLOT" not in name]
    assert len(saved) == 1, saved
    np.testing.assert_array_equal(model.batch_loss.proxies.numpy(),
                                  tf.train.load_variable(checkpoint, saved[0]))


def _encoder_values(model):
    return [v.numpy() for v in model.encoder.variables]


def test_fine_tuning_starts_from_a_runs_checkpoint_or_export(finished_run, tmp_path):
    workdir = finished_run[0]
    trained = _encoder_values(runs.Run(str(workdir)).restore()[1])
    export_run(str(workdir), str(tmp_path / "models"))
    for source in (workdir, tmp_path / "models", tmp_path / "models" / "1"):
        config = _small_config()
        config.model.init_from = str(source)
        # Another label set (fine-tuning on new classes): only the encoder is taken.
        start = runs.encoder_start(config)
        started = _encoder_values(factories.build_model(config, 7, 3, start))
        assert len(started) == len(trained)
        for a, b in zip(started, trained):
            np.testing.assert_array_equal(a, b)
    config = _small_config()
    config.model.init_from = str(workdir)
    assert not np.array_equal(_encoder_values(factories.build_model(config, 7, 3, None))[0],
                              trained[0])


def test_fine_tuning_from_another_architecture_or_a_non_run_is_one_error(finished_run,
                                                                         tmp_path):
    config = _small_config()
    config.model.init_from = str(finished_run[0])
    config.model.embedding_dim = 32
    with pytest.raises(ValueError, match=r"model.init_from='.*' does not fit the encoder: "
                                         r"variable 4 has shape \(64, 64\) there and "
                                         r"\(64, 32\) here"):
        train(config, str(tmp_path / "w"))
    assert not (tmp_path / "w").exists()
    config.model.init_from = str(tmp_path)
    with pytest.raises(checks.ConfigError, match="neither a training workdir"):
        train(config, str(tmp_path / "w"))
    config.model.weights = "imagenet"
    with pytest.raises(checks.ConfigError, match="start from one or the other"):
        train(config, str(tmp_path / "w"))
    assert not (tmp_path / "w").exists()


def test_the_pretrained_benchmark_config_fine_tunes_from_a_pretraining_run(
        finished_run, tmp_path, monkeypatch):
    from configs import noise_benchmark
    monkeypatch.chdir(tmp_path)   # where no runs/synthetic-pretraining exists
    config = noise_benchmark.get_config("pretrained")
    checks.check_config(config)
    with pytest.raises(checks.ConfigError, match="config.model.init_from = "
                                                     "'runs/synthetic-pretraining': expected"):
        checks.check_encoder_start(config)
    config.model.init_from = str(finished_run[0])   # the same small CNN
    start = runs.encoder_start(config)
    assert start.message("small_cnn") == (
        f"Encoder small_cnn: starts from the encoder of {finished_run[0]}, its step 40 "
        "(model.init_from; fine-tuning).")
    assert (config.memory.start_step, config.selector.window_size) == (0, 30)
    model = factories.build_model(config, 100, 3, start)
    trained = runs.Run(str(finished_run[0])).restore()[1]
    np.testing.assert_array_equal(model.encoder.variables[0].numpy(),
                                  trained.encoder.variables[0].numpy())


def test_noise_rate_auto_from_the_command_line(tmp_path):
    result = _run(_train_command(tmp_path / "w", "--config.selector.noise_rate=auto",
                                 "--config.train.steps=20"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "w" / "config.json").read_text())["selector"][
        "noise_rate"] == "auto"
    metrics = json.loads((tmp_path / "w" / "metrics.json").read_text())
    assert 0.0 <= metrics["noise_estimate"] <= 1.0
    result = _run(_train_command(tmp_path / "x", "--config.selector.noise_rate=most"))
    assert result.returncode != 0
    assert "config.selector.noise_rate = 'most': expected a rate in [0, 1)" in result.stderr
    assert not (tmp_path / "x").exists()


def test_a_finished_run_started_again_reports_its_metrics(finished_run):
    workdir, metrics = finished_run
    assert train(_small_config(), str(workdir), verbose=0) == pytest.approx(metrics)


def _with(config, **changes):
    for key, value in changes.items():
        parent = config
        *sections, name = key.split("__")
        for part in sections:
            parent = parent[part]
        parent[name] = value
    return config


@pytest.mark.parametrize("changes,match", [
    ({"selector__window_size": 0}, "window_size"),
    ({"model__encoder": "NoSuchNet"}, "unknown encoder 'NoSuchNet'"),
    ({"selector__scoring": "bogus"}, "scoring = 'bogus': expected one of the names"),
    ({"selector__scoring": "proxies"},
     r"PrismSelector\(scoring='proxies'\) scores with the batch loss's proxies; "
     "MemoryContrastiveLoss has none"),
    ({"memory__start_step": -1}, "memory_start_step must be"),
    ({"train__batch_size": 512, "memory__size": 4096}, "need 128 classes; the labels have 100"),
    ({"data__synthetic__family": "cars"}, "family must be one of"),
    ({"loss__name": "soft_triple", "loss__soft_triple__gamma": 0.0},
     "SoftTripleLoss: gamma must be a finite number > 0; got 0.0"),
    ({"loss__name": "proxy_anchor", "loss__proxy_anchor__alpha": -2.0},
     "ProxyAnchorLoss: alpha must be a finite number > 0; got -2.0"),
])
def test_a_config_that_fails_while_building_leaves_no_workdir(tmp_path, changes, match):
    with pytest.raises(ValueError, match=match):
        train(_with(_small_config(), **changes), str(tmp_path / "w"))
    assert not (tmp_path / "w").exists()


def test_a_one_class_folder_leaves_no_workdir(tmp_path):
    from tests import data_helpers

    data_helpers.image_folder(tmp_path / "images", images_per_class=(3,))
    config = _with(_small_config(), data__source="folder",
                   data__folder__data_dir=str(tmp_path / "images"))
    with pytest.raises(ValueError):
        train(config, str(tmp_path / "w"))
    assert not (tmp_path / "w").exists()


def test_an_evaluation_split_of_single_images_is_refused_before_work(tmp_path):
    from tests import data_helpers

    data_helpers.image_folder(tmp_path / "train", images_per_class=(4, 4, 4, 4))
    data_helpers.image_folder(tmp_path / "test", images_per_class=(1, 1, 1), seed=1)
    config = _with(_small_config(), data__source="folder",
                   data__folder__data_dir=str(tmp_path / "train"),
                   data__folder__test_dir=str(tmp_path / "test"), train__batch_size=8)
    with pytest.raises(checks.ConfigError, match="no class with 2 or more images"):
        train(config, str(tmp_path / "w"))
    assert not (tmp_path / "w").exists()


def test_noise_is_injected_only_when_asked_and_said(tmp_path, capsys):
    from configs.base import base_config

    config = _with(base_config(), train__steps=2, train__eval_every=2)
    train(config, str(tmp_path / "plain"), verbose=0)
    assert "used as given (no noise injected)" in capsys.readouterr().out
    data = json.loads((tmp_path / "plain" / "data.json").read_text())
    assert data["noise"] == {"kind": "none", "requested_rate": 0.0, "realized_rate": 0.0,
                             "noisy_samples": 0}
    # The demo's 50% symmetric noise is announced; kind=none alone turns it off.
    config = _with(_small_config(), train__steps=2, train__eval_every=2)
    train(config, str(tmp_path / "demo"), verbose=0)
    assert ("Injected symmetric label noise into synthetic/train: 2000 of 4000 labels (50.0%)"
            in capsys.readouterr().out)
    config = _with(_small_config(), train__steps=2, train__eval_every=2,
                   data__injected_noise__kind="none")
    train(config, str(tmp_path / "none"), verbose=0)
    assert json.loads((tmp_path / "none" / "data.json").read_text())["noise"]["noisy_samples"] == 0


def test_eval_every_that_does_not_divide_steps_ends_on_the_last_step(tmp_path):
    config = _with(_small_config(), train__steps=30, train__eval_every=20)
    metrics = train(config, str(tmp_path / "w"), verbose=0)
    assert metrics["step"] == 30 and "kept_purity" in metrics
    checkpoints = tf.train.get_checkpoint_state(str(tmp_path / "w" / "checkpoints"))
    assert [Path(p).name for p in checkpoints.all_model_checkpoint_paths] == ["ckpt-20",
                                                                             "ckpt-30"]


def test_a_kill_after_the_last_checkpoint_resumes_to_the_same_metrics(finished_run, tmp_path):
    # The state such a kill leaves: every checkpoint written, no metrics.json.
    workdir = tmp_path / "killed_late"
    shutil.copytree(finished_run[0], workdir)
    (workdir / "metrics.json").unlink()
    assert train(_small_config(), str(workdir), verbose=0) == pytest.approx(finished_run[1])
    assert (json.loads((workdir / "metrics.json").read_text())
            == json.loads((finished_run[0] / "metrics.json").read_text()))


@pytest.mark.parametrize("damage", ["truncated data", "no index", "no data"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before(finished_run, tmp_path,
                                                                  damage, caplog):
    workdir = tmp_path / "damaged"
    shutil.copytree(finished_run[0], workdir)
    data, index = (workdir / "checkpoints" / name for name in
                   ("ckpt-40.data-00000-of-00001", "ckpt-40.index"))
    if damage == "truncated data":
        data.write_bytes(data.read_bytes()[:data.stat().st_size // 2])
    else:
        (index if damage == "no index" else data).unlink()
    # evaluate and export use ckpt-20 and say so; resuming trains from it
    # again and ends as the uninterrupted run did.
    evaluated = evaluate(str(workdir))
    assert evaluated["precision_at_1"] == pytest.approx(
        finished_run[1]["precision_at_1_step_20"], abs=1e-9)
    assert "ckpt-40 cannot be used" in caplog.text and "step 20" in caplog.text
    (workdir / "metrics.json").unlink()
    assert train(_small_config(), str(workdir), verbose=0) == pytest.approx(finished_run[1])


def test_a_damaged_metrics_json_of_a_finished_run_is_written_again(finished_run, tmp_path):
    workdir = tmp_path / "truncated"
    shutil.copytree(finished_run[0], workdir)
    text = (workdir / "metrics.json").read_text()
    (workdir / "metrics.json").write_text(text[:len(text) // 2])
    assert train(_small_config(), str(workdir), verbose=0) == pytest.approx(finished_run[1])
    assert json.loads((workdir / "metrics.json").read_text()) == json.loads(text)


@pytest.mark.parametrize("edit", ["seed", "image size", "key removed"])
def test_a_config_json_edited_after_the_run_started_is_refused(finished_run, tmp_path, edit):
    workdir = tmp_path / "edited"
    shutil.copytree(finished_run[0], workdir)
    config = json.loads((workdir / "config.json").read_text())
    if edit == "seed":
        config["data"]["seed"] = 7
    elif edit == "image size":
        config["preprocessing"]["image_size"] = 48
    else:
        del config["eval"]["recall_at"]
    (workdir / "config.json").write_text(json.dumps(config))
    for use in (evaluate, lambda w: export_run(w, str(tmp_path / "models"))):
        with pytest.raises(checks.ConfigError, match="config.json was changed after the "
                                                         "run started"):
            use(str(workdir))
    assert not (tmp_path / "models").exists()


def test_a_run_of_an_earlier_config_layout_is_refused_naming_the_keys(finished_run, tmp_path):
    workdir = tmp_path / "old"
    shutil.copytree(finished_run[0], workdir)
    config = json.loads((workdir / "config.json").read_text())
    # The layout before the data regroup: preprocessing and sampling keys under data.
    config["data"].update(config.pop("preprocessing"), **config.pop("sampling"))
    text = json.dumps(config)
    (workdir / "config.json").write_text(text)
    data = json.loads((workdir / "data.json").read_text())
    data["config_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    (workdir / "data.json").write_text(json.dumps(data))
    for use in (evaluate, lambda w: export_run(w, str(tmp_path / "models"))):
        with pytest.raises(checks.ConfigError, match=(
                r"does not have this version's config keys \(keys it lacks: "
                r"preprocessing.crop_scale, .*; keys this version does not know: "
                r"data.crop_scale, data.eval_resize")):
            use(str(workdir))
    assert not (tmp_path / "models").exists()


def test_fine_tuning_resumes_from_its_own_checkpoint_once_its_source_is_gone(finished_run,
                                                                           tmp_path):
    # The source is still training (at step 20 of 40): the step copied is recorded.
    source = _back_to_step_20(finished_run[0], tmp_path / "source")
    config = _with(_small_config(), model__init_from=str(source), train__steps=4,
                   train__eval_every=2)
    metrics = train(config, str(tmp_path / "tuned"), verbose=0)
    recorded = {"init_from": str(source), "step": 20}
    assert json.loads((tmp_path / "tuned" / "encoder_start.json").read_text()) == recorded
    shutil.rmtree(source)
    (tmp_path / "tuned" / "metrics.json").unlink()   # killed after its last checkpoint
    assert train(config, str(tmp_path / "tuned"), verbose=0) == pytest.approx(metrics)
    assert json.loads((tmp_path / "tuned" / "encoder_start.json").read_text()) == recorded
    # A new run still needs the source, and says so before it writes anything.
    with pytest.raises(checks.ConfigError, match="config.model.init_from = .*expected ''"):
        train(config, str(tmp_path / "new"), verbose=0)
    assert not (tmp_path / "new").exists()


def test_a_non_finite_step_stops_the_run_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    import pipelines.train as train_module

    real = train_module.train_dataset

    def poisoned(*args, start_step=0, **kwargs):
        # NaN images from step 26 on (steps counted from 1).
        return real(*args, start_step=start_step, **kwargs).enumerate(start_step).map(
            lambda step, batch: (tf.where(step >= 25, np.nan, batch[0]),) + tuple(batch[1:]))

    monkeypatch.setattr(train_module, "train_dataset", poisoned)
    with pytest.raises(InvalidBatchError, match=r"training step 26 refused: non-finite.*"
                                                r"Last good checkpoint: .*ckpt-20"):
        train(_small_config(), str(tmp_path / "w"), verbose=0)
    assert not (tmp_path / "w" / "metrics.json").exists()
    latest = tf.train.latest_checkpoint(str(tmp_path / "w" / "checkpoints"))
    assert latest.endswith("ckpt-20")
    for name, _ in tf.train.list_variables(latest):
        value = tf.train.load_variable(latest, name)
        if np.issubdtype(np.asarray(value).dtype, np.floating):
            assert np.isfinite(value).all(), name


def test_config_errors_are_one_line_without_usage_text(tmp_path):
    result = _run(_train_command(tmp_path / "w", "--config.train.learning_rate=0"))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "error: config.train.learning_rate = 0.0: expected a learning rate in (0, 1]")
    assert "USAGE" not in result.stderr and "--config" not in result.stderr.splitlines()[-1]
    assert not (tmp_path / "w").exists()


def test_undecodable_images_are_skipped_and_recorded_or_refused_in_strict_mode(tmp_path):
    from tests import data_helpers

    data_helpers.image_folder(tmp_path / "train", images_per_class=(4, 4, 4))
    data_helpers.image_folder(tmp_path / "test", images_per_class=(3, 3), seed=1)
    damaged = data_helpers.damage_png_body(tmp_path / "train" / "class_2" / "img_1.png")
    config = _with(_small_config(), data__source="folder",
                   data__folder__data_dir=str(tmp_path / "train"),
                   data__folder__test_dir=str(tmp_path / "test"), train__batch_size=8,
                   train__steps=2, train__eval_every=2, memory__size=64,
                   eval__recall_at=(1, 2, 4))   # 6 test images: Recall@8 would see them all
    train(config, str(tmp_path / "w"), verbose=0)
    data = json.loads((tmp_path / "w" / "data.json").read_text())
    assert data["train"]["skipped_undecodable"] == [str(damaged)]
    assert data["train"]["samples"] == 11
    config.data.strict = True
    with pytest.raises(ValueError, match=r"cannot be decoded: .*img_1.png"):
        train(config, str(tmp_path / "strict"), verbose=0)
    assert not (tmp_path / "strict").exists()


@pytest.mark.parametrize("noise_rate", [0.0, 0.5])
def test_the_own_data_config_trains_on_a_folder_of_class_folders(tmp_path, capsys,
                                                                  noise_rate):
    from configs import own_data
    from tests import data_helpers

    data_helpers.image_folder(tmp_path / "images", images_per_class=(4,) * 32)
    config = _with(own_data.get_config(), data__folder__data_dir=str(tmp_path / "images"),
                   selector__noise_rate=noise_rate, train__steps=4, train__eval_every=2)
    metrics = train(config, str(tmp_path / "w"), verbose=0)
    assert metrics["step"] == 4 and 0.0 <= metrics["precision_at_1"] <= 1.0
    if not noise_rate:
        assert metrics["kept_fraction"] == 1.0   # PRISM off: every sample trains
    # A folder's labels carry no ground truth: purity and recall would read
    # 1.0 and 0.0 and mean nothing, so neither metrics.json nor TensorBoard has them.
    assert not {"kept_purity", "noise_recall"} & set(metrics)
    tags = {value.tag for events in (tmp_path / "w" / "tensorboard").rglob("events.out.*")
            for event in tf.compat.v1.train.summary_iterator(str(events))
            for value in event.summary.value}
    assert "epoch_kept_fraction" in tags or "kept_fraction" in tags, sorted(tags)
    assert not [tag for tag in tags if "purity" in tag or "recall" in tag.replace(
        "recall_at", "")], sorted(tags)
    if noise_rate:
        assert "clean_probability/all" in tags and "clean_probability/clean" not in tags
    out = capsys.readouterr().out
    assert "used as given (no noise injected)" in out
    assert "all resized to 64x64 (preprocessing.image_size)" in out
    assert "no flips (preprocessing.flip)" in out


@pytest.mark.parametrize("flags,message", [
    (["--config=configs/nope.py"], "Failed loading config file"),
    (["--config=configs/default.py", "--config.train.stepz=5"],
     'Did you mean "steps" instead of "stepz"?'),
    (["--config=configs/default.py", "--config.train.steps=abc"], "invalid literal"),
])
def test_a_bad_config_file_or_override_is_one_line(tmp_path, flags, message):
    result = _run([sys.executable, "-m", "pipelines.train", f"--workdir={tmp_path / 'w'}",
                   *flags])
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "USAGE" not in result.stderr
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("where,message", [
    ("file", "is a file, not a folder"),
    ("under_file", "cannot write to workdir"),
    ("read_only", "cannot write to workdir"),   # /sys refuses even root
])
def test_a_workdir_that_cannot_be_written_is_one_line(tmp_path, where, message):
    (tmp_path / "a_file").write_text("x")
    workdir = {"file": tmp_path / "a_file", "under_file": tmp_path / "a_file" / "w",
               "read_only": Path("/sys/prism_tf_test")}[where]
    with pytest.raises(checks.ConfigError, match=message):
        train(_small_config(), str(workdir), verbose=0)


def test_a_read_only_export_folder_is_one_line(finished_run):
    result = _run([sys.executable, "-m", "pipelines.export", f"--workdir={finished_run[0]}",
                   "--export_dir=/sys/prism_tf_models"])
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: cannot write to export folder /sys/prism_tf_models")


def test_search_k_without_an_index_is_refused_not_ignored(finished_run, tmp_path):
    result = _run([sys.executable, "-m", "pipelines.export", f"--workdir={finished_run[0]}",
                   f"--export_dir={tmp_path / 'models'}", "--search_k=3"])
    assert result.returncode != 0
    assert "--search_k is for the search signatures: it needs --index" in result.stderr
    assert not (tmp_path / "models").exists()


def _csv_data(root: Path) -> Path:
    """root/images (6 classes) and root/train.csv, root/test.csv naming them."""
    from tests import data_helpers

    data_helpers.image_folder(root / "images", images_per_class=(4,) * 6)
    lines = {"train": [], "test": []}
    for c in range(6):
        for j in range(4):
            suffix = "png" if j % 2 else "jpg"
            lines["train" if c < 3 else "test"].append(f"images/class_{c}/img_{j}.{suffix},{c}")
    for part, rows in lines.items():
        (root / f"{part}.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    return root


def test_csv_lists_and_the_paths_in_them_are_relative_to_data_dir(tmp_path, monkeypatch):
    root = _csv_data(tmp_path / "data")
    monkeypatch.chdir(tmp_path)   # not where the lists are
    config = _with(_small_config(), data__source="csv", data__csv__data_dir=str(root),
                   data__csv__train_list="train.csv", data__csv__test_list="test.csv",
                   data__injected_noise__kind="none", train__batch_size=8, train__steps=2,
                   train__eval_every=2, memory__size=64)
    metrics = train(config, str(tmp_path / "w"), verbose=0)
    assert metrics["step"] == 2
    data = json.loads((tmp_path / "w" / "data.json").read_text())
    assert data["train"]["samples"] == 12 and data["test"]["samples"] == 12


def _csv_config(root: Path, **changes):
    return _with(_small_config(), data__source="csv", data__csv__data_dir=str(root),
                 data__csv__train_list="train.csv", data__csv__test_list="test.csv",
                 train__batch_size=8,
                 train__steps=2, train__eval_every=2, memory__size=64, **changes)


def test_a_run_keeps_the_labels_it_started_with(tmp_path):
    from pipelines.find_noisy_labels import find_noisy_labels

    root = _csv_data(tmp_path / "data")
    config = _csv_config(root, data__injected_noise__rate=0.25)
    train(config, str(tmp_path / "w"), verbose=0)
    # One image gone: the noise would be drawn again over another sample list.
    lines = (root / "train.csv").read_text().splitlines()
    (root / "train.csv").write_text("\n".join(lines[:-1]) + "\n")
    data = (tmp_path / "w" / "data.json").read_text()
    for use in (lambda: train(config, str(tmp_path / "w"), verbose=0),
                lambda: evaluate(str(tmp_path / "w")),
                lambda: find_noisy_labels(str(tmp_path / "w"), grid=0, html=0)):
        with pytest.raises(checks.ConfigError, match=r"was started on other data than its "
                           r"config gives now \(train: 12 samples then, 11 now"):
            use()
    assert (tmp_path / "w" / "data.json").read_text() == data
    assert not (tmp_path / "w" / "noisy_labels.csv").exists()


def test_repeated_images_are_left_out_and_said_and_shared_ones_refused(tmp_path, capsys):
    root = _csv_data(tmp_path / "data")
    rows = (root / "test.csv").read_text().splitlines()
    # Every test row twice: each query would find its own copy (P@1 1.0).
    (root / "test.csv").write_text("\n".join(rows + rows[1:]) + "\n")
    metrics = train(_csv_config(root, data__injected_noise__kind="none"),
                    str(tmp_path / "w"), verbose=0)
    data = json.loads((tmp_path / "w" / "data.json").read_text())
    assert data["test"]["samples"] == 12 and len(data["test"]["repeats_dropped"]) == 12
    assert metrics["num_queries"] == 12
    assert "Left out of test.csv: 12 images that repeat an earlier one" in \
        capsys.readouterr().out.replace(str(root) + "/", "")
    # The training images as the evaluation split: refused before any work.
    config = _with(_small_config(), data__source="folder",
                   data__folder__data_dir=str(root / "images"),
                   data__folder__test_dir=str(root / "images"),
                   train__batch_size=8, memory__size=64)
    with pytest.raises(ValueError, match=r"24 images of the evaluation split .* are in the "
                                         r"training split .* too \(the same file or the same"):
        train(config, str(tmp_path / "same"), verbose=0)
    assert not (tmp_path / "same").exists()


@pytest.mark.parametrize("module", ["pipelines.train", "pipelines.benchmarks.accuracy"])
def test_a_missing_list_is_one_line(tmp_path, module):
    root = _csv_data(tmp_path / "data")
    target = ["--workdir", str(tmp_path / "w")] if module == "pipelines.train" else [
        "--root", str(tmp_path / "w"), "--methods=semihard", "--noise=none:0", "--seeds=0"]
    result = _run([sys.executable, "-m", module, "--config=configs/own_data.py",
                   "--config.data.source=csv", f"--config.data.csv.data_dir={root}",
                   "--config.data.csv.train_list=nope.csv",
                   "--config.data.csv.test_list=test.csv",
                   *target])
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: image list not found: {root / 'nope.csv'}")
    assert not (tmp_path / "w").exists() or not any((tmp_path / "w").rglob("config.json"))
