"""The noisy-label finder: leave-one-out clean probabilities, ranking
metrics against brute force, and the pipeline on a trained run."""

import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from configs import default
from pipelines import factories
from pipelines.find_noisy_labels import clean_scores, find_noisy_labels
from pipelines.runs import Run, load_splits
from pipelines.train import train
from prism_tf import MemoryBank
from prism_tf.data import DataError
from prism_tf.data.verdicts import parse_verdicts
from prism_tf.label_issues import clean_probabilities, neighbour_agreement, ranking_metrics
from prism_tf.scoring import SCORINGS
from tests import browser, markdown

ROOT = Path(__file__).resolve().parents[1]


def _reference_clean_probabilities(z, labels, num_classes, temperature):
    """Loop over samples: each class centre from the other samples of the set."""
    p, best = [], []
    for i in range(len(z)):
        others = np.arange(len(z)) != i
        logits = np.full(num_classes, -np.inf)
        for k in range(num_classes):
            members = others & (labels == k)
            if members.any():
                logits[k] = z[i] @ z[members].mean(0) / temperature
        best.append(int(np.argmax(logits)))
        own = logits[labels[i]]
        p.append(np.nan if np.isinf(own) else np.exp(own - np.logaddexp.reduce(logits)))
    return np.array(p), np.array(best)


def test_clean_probabilities_match_a_leave_one_out_loop():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(70, 6))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    labels = rng.integers(0, 5, 70)
    labels[0] = 6   # alone in class 6: unscorable; class 7 empty
    p, best = clean_probabilities(z.astype("float32"), labels, num_classes=8, temperature=0.1,
                                  chunk_size=16)
    p_ref, best_ref = _reference_clean_probabilities(z, labels, 8, 0.1)
    np.testing.assert_allclose(p, p_ref, rtol=1e-4, atol=1e-6)
    assert np.isnan(p[0]) and np.isnan(p).sum() == 1
    np.testing.assert_array_equal(best, best_ref)


@pytest.mark.parametrize("name", ["centers", "full", "vmf"])
def test_each_scorings_leave_one_out_form_is_its_score_without_the_row(name):
    rng = np.random.default_rng(4)
    z = rng.normal(size=(24, 5)).astype("float32")
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    labels = rng.integers(0, 4, 24)
    labels[0] = 4   # alone in its class; class 5 empty
    scoring = SCORINGS[name]()
    bank = MemoryBank(24, 5, 6)
    bank.enqueue(z, labels)
    logits, present = scoring.leave_one_out_logits(tf.constant(z), tf.constant(labels, tf.int32),
                                                   bank)
    for i in (0, 1, 7, 23):
        others = np.arange(24) != i
        without = MemoryBank(23, 5, 6)
        without.enqueue(z[others], labels[others])
        np.testing.assert_array_equal(present[i], scoring.present(without))
        np.testing.assert_allclose(
            tf.boolean_mask(logits[i], present[i]),
            tf.boolean_mask(scoring.logits(z[i:i + 1], without)[0], present[i]),
            rtol=1e-4, atol=1e-4)


def test_clean_probabilities_refuse_labels_outside_the_classes():
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\)"):
        clean_probabilities(np.ones((2, 3), "float32"), [0, 2], num_classes=2)


def test_neighbour_agreement_matches_a_brute_force_search():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(150, 6))
    labels = rng.integers(0, 5, 150)
    got = neighbour_agreement(z.astype("float32"), labels, k=7, chunk_size=40)
    unit = z / np.linalg.norm(z, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    nearest = np.argsort(-similarity, axis=1)[:, :7]
    expected = ((labels[nearest] == labels[:, None]).sum(1) + 1) / 9
    np.testing.assert_allclose(got, expected)
    with pytest.raises(ValueError, match="k must be in"):
        neighbour_agreement(z, labels, k=150)
    # The finder's clean score: the product, or the probability alone without neighbours.
    p, agreement, score, _ = clean_scores(z.astype("float32"), labels, 5, neighbours=7)
    np.testing.assert_allclose(agreement, expected)
    np.testing.assert_allclose(score, p * expected)
    p, agreement, score, _ = clean_scores(z.astype("float32"), labels, 5, neighbours=0)
    assert (agreement == 1).all() and np.array_equal(score, p)


def test_ranking_metrics_match_brute_force():
    rng = np.random.default_rng(1)
    suspicion = rng.integers(0, 6, 200).astype(float)   # many ties
    wrong = rng.random(200) < 0.3
    metrics = ranking_metrics(suspicion, wrong, top_k=[10, 50])
    pairs = suspicion[wrong][:, None] - suspicion[~wrong][None, :]
    assert metrics["roc_auc"] == pytest.approx((pairs > 0).mean() + 0.5 * (pairs == 0).mean())
    order = np.argsort(-suspicion, kind="stable")
    precisions = [wrong[order][:k + 1].mean() for k in range(200) if wrong[order][k]]
    assert metrics["average_precision"] == pytest.approx(np.mean(precisions))
    assert metrics["precision_at_10"] == wrong[order][:10].mean()
    assert metrics["recall_at_50"] == wrong[order][:50].sum() / wrong.sum()
    count = int(wrong.sum())
    assert metrics["precision_at_wrong_count"] == metrics["recall_at_wrong_count"] == (
        wrong[order][:count].sum() / count)


def test_ranking_metrics_need_both_kinds_of_label():
    with pytest.raises(ValueError, match="needs both wrong and right labels"):
        ranking_metrics([0.1, 0.2], [False, False])


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("finder") / "run"
    config = default.get_config()
    config.train.steps, config.train.eval_every = 40, 40
    train(config, str(workdir), verbose=0)
    return workdir


def test_the_finder_ranks_the_injected_wrong_labels_first(trained_run, tmp_path):
    summary = find_noisy_labels(str(trained_run), output=str(tmp_path), grid=20, html=0)
    assert summary["samples"] == 4000 and summary["ground_truth"]
    assert summary["unscorable_single_sample_classes"] == 0
    assert summary["roc_auc"] > 0.75 and summary["average_precision"] > 0.7
    with (tmp_path / "noisy_labels.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 4000
    assert [int(r["rank"]) for r in rows] == list(range(1, 4001))
    assert {r["given_name"] for r in rows} == {""}   # the synthetic set has no class names
    assert sorted(int(r["sample"]) for r in rows) == list(range(4000))
    score = [float(r["clean_score"]) for r in rows]
    assert score == sorted(score)
    for row in rows[::97]:
        assert float(row["clean_score"]) == pytest.approx(
            float(row["clean_probability"]) * float(row["neighbour_agreement"]), rel=1e-5)
    data = json.loads((trained_run / "data.json").read_text())
    assert sum(int(r["is_wrong"]) for r in rows) == data["noise"]["noisy_samples"]
    # The top suspects are mostly wrong labels, and most of those are moved
    # to another class than the one they were given.
    top = rows[:400]
    assert np.mean([int(r["is_wrong"]) for r in top]) > 0.8
    assert np.mean([r["most_likely_label"] != r["given_label"] for r in top]) > 0.5
    assert summary == json.loads((tmp_path / "noisy_labels.json").read_text())
    # The summary names the list it describes.
    assert summary["csv_sha256"] == hashlib.sha256(
        (tmp_path / "noisy_labels.csv").read_bytes()).hexdigest()
    png = (tmp_path / "noisy_labels.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    # 20 suspects of 32 x 32 in 8 columns of 96-pixel tiles (100 with the
    # frame), each with four caption lines under it, two legend lines on top.
    picture = tf.io.decode_png(png).numpy()
    top, cell_h, cell_w = 2 * 12 + 4, 96 + 4 + 4 * 12 + 4, 100
    assert picture.shape == (top + 3 * cell_h, 8 * cell_w, 3)
    assert (picture[4:top - 4] < 64).any()   # the legend's text
    for rank, row in enumerate(rows[:8]):
        x = rank * cell_w
        frame = (230, 25, 25) if row["is_wrong"] == "1" else (25, 204, 25)
        assert tuple(picture[top + 1, x + 1]) == frame, rank
        caption = picture[top + 100:top + cell_h - 4, x:x + cell_w]
        assert (caption < 64).all(axis=-1).sum() > 50, rank   # dark text on white


def test_the_command_writes_beside_the_run_and_refuses_a_folder_that_is_no_run(
        trained_run, tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.find_noisy_labels", f"--workdir={trained_run}",
         "--grid=0", "--html=0"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["samples"] == 4000
    assert (trained_run / "noisy_labels.csv").is_file()
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.find_noisy_labels", f"--workdir={trained_run}",
         "--neighbours=4000", f"--output={tmp_path / 'out'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: --neighbours=4000: expected 0")
    assert not (tmp_path / "out").exists()
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.find_noisy_labels", f"--workdir={tmp_path}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "not a training workdir" in result.stderr


# Each flag the finder refuses: (find_noisy_labels' argument, the one line it says).
BAD_FINDER_FLAGS = {
    "--temperature=0": ({"temperature": 0.0}, "--temperature=0.0: expected a finite number "
                        "> 0 (it divides the class-centre logits)"),
    "--temperature=nan": ({"temperature": float("nan")}, "--temperature=nan: expected a "
                          "finite number > 0 (it divides the class-centre logits)"),
    "--grid=-3": ({"grid": -3}, "--grid=-3: expected 0 (no picture) or more suspects"),
    "--html=-1": ({"html": -1}, "--html=-1: expected 0 (no review page) or more suspects"),
    "--examples=-1": ({"examples": -1}, "--examples=-1: expected 0 or more images per class"),
    "--chunk_size=0": ({"chunk_size": 0},
                       "--chunk_size=0: expected a positive number of samples"),
    "--suggest_drop=1": ({"suggest_drop": 1.0}, "--suggest_drop=1.0: expected a share in "
                         "[0, 1) of the scored samples"),
}


@pytest.mark.parametrize("flag", BAD_FINDER_FLAGS)
def test_finder_flags_that_cannot_work_are_refused_before_any_output(trained_run, tmp_path,
                                                                     flag):
    argument, message = BAD_FINDER_FLAGS[flag]
    with pytest.raises(ValueError) as refused:
        find_noisy_labels(str(trained_run), output=str(tmp_path / "out"), **argument)
    assert str(refused.value) == message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag", ["--temperature=nan", "--grid=-3"])
def test_finder_flags_that_cannot_work_are_one_line_from_the_command(trained_run, tmp_path,
                                                                     flag):
    # Two of them through the command, as a user runs it: the same line (cli.one_line_errors).
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.find_noisy_labels", f"--workdir={trained_run}",
         f"--output={tmp_path / 'out'}", flag], cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, capture_output=True, text=True,
        timeout=600)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"error: {BAD_FINDER_FLAGS[flag][1]}"
    assert not (tmp_path / "out").exists()


def test_the_finder_never_writes_through_a_symlink_or_leaves_a_stale_summary(trained_run,
                                                                             tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (out / "noisy_labels.png").symlink_to(victim)
    (out / ".noisy_labels.csv.999999.tmp").symlink_to(victim)   # a planted temporary
    (out / "noisy_labels.json").write_text('{"from": "an older run"}')
    victim_folder = tmp_path / "victim_folder"
    victim_folder.mkdir()
    (victim_folder / "keep.txt").write_text("keep me")
    (out / "noisy_labels_images").symlink_to(victim_folder)
    summary = find_noisy_labels(str(trained_run), output=str(out), grid=8, html=8)
    assert victim.read_text() == "keep me"
    assert [p.name for p in victim_folder.iterdir()] == ["keep.txt"]
    assert not (out / "noisy_labels.png").is_symlink()
    assert not (out / "noisy_labels_images").is_symlink()
    assert (out / "noisy_labels.png").read_bytes().startswith(b"\x89PNG")
    assert json.loads((out / "noisy_labels.json").read_text()) == summary
    assert sorted(p.name for p in out.iterdir()) == [
        "noisy_labels.csv", "noisy_labels.html", "noisy_labels.json", "noisy_labels.png",
        "noisy_labels_images"]
    # What a later call does not write is gone, not left to describe an older list.
    find_noisy_labels(str(trained_run), output=str(out), grid=0, html=0)
    assert sorted(p.name for p in out.iterdir()) == ["noisy_labels.csv", "noisy_labels.json"]


def test_the_review_page_opens_in_a_browser_and_its_verdicts_load(trained_run, tmp_path):
    find_noisy_labels(str(trained_run), output=str(tmp_path), grid=0, html=120, examples=3)
    rows = _verdict_rows(tmp_path / "noisy_labels.csv")[:120]
    page_file = tmp_path / "noisy_labels.html"
    with browser.chromium_page() as (page, errors):
        page.goto(page_file.as_uri())
        assert page.text_content("#position") == "page 1 of 3 (120 of 120 suspects)"
        first = page.locator("#rows tr").first
        assert first.get_attribute("data-sample") == rows[0]["sample"]
        # The synthetic set has no class names: the labels are shown as numbers.
        assert first.locator(".label").all_text_contents() == [
            rows[0]["given_label"], rows[0]["most_likely_label"]]
        assert first.locator("img.example").count() == 6   # three of each class
        frame = "wrong" if rows[0]["is_wrong"] == "1" else "right"
        assert first.locator(f"img.suspect.{frame}").count() == 1
        page.wait_for_function("[...document.querySelectorAll('#rows tr:nth-child(-n+3) img')]"
                               ".every(image => image.complete && image.naturalWidth > 0)")
        # Highest clean score first: the header clicked twice.
        page.click("th[data-column=clean_score]")
        page.click("th[data-column=clean_score]")
        scores = [float(r["clean_score"]) for r in rows]
        assert first.get_attribute("data-sample") == rows[int(np.argmax(scores))]["sample"]
        assert "sort=-clean_score" in page.url
        page.click("#next")
        assert page.text_content("#position").startswith("page 2 of 3")
        page.reload()   # the address keeps the sort and the page
        assert page.text_content("#position").startswith("page 2 of 3")
        page.goto(page_file.as_uri())
        # Verdicts: drop the first suspect, keep the second, relabel the third.
        selects = page.locator("#rows tr select")
        selects.nth(0).select_option("drop")
        selects.nth(1).select_option("keep")
        selects.nth(2).select_option("relabel")
        page.locator("#rows tr").nth(2).locator("input").fill("5")
        page.locator("#rows tr").nth(2).locator("input").dispatch_event("change")
        assert page.text_content("#verdict-count") == "3 verdict(s) on this list"
        page.reload()   # kept in the browser for this list
        assert page.text_content("#verdict-count") == "3 verdict(s) on this list"
        with page.expect_download() as download:
            page.click("#download")
        download.value.save_as(tmp_path / "verdicts.csv")
        assert errors == []
    verdicts = parse_verdicts((tmp_path / "verdicts.csv").read_bytes(), "verdicts.csv")
    assert verdicts.drop == {int(rows[0]["sample"])}
    assert verdicts.relabel == {int(rows[2]["sample"]): 5}
    assert {s: g for s, (g, _, _) in verdicts.given.items()} == {
        int(r["sample"]): int(r["given_label"]) for r in rows[:3]}
    # Without the relabel (refused where the ground truth is known), the
    # page's CSV is what a further pass trains on.
    edited = [r for r in _verdict_rows(tmp_path / "verdicts.csv") if r["verdict"] != "relabel"]
    _write_rows(tmp_path / "drop_and_keep.csv", edited)
    config = default.get_config()
    config.data.verdicts = str(tmp_path / "drop_and_keep.csv")
    train_split, _ = load_splits(config)
    assert len(train_split) == 4000 - 1


def test_the_finder_scores_an_export_as_it_scores_the_checkpoint(trained_run, tmp_path):
    from pipelines.export import export_run
    version = export_run(str(trained_run), str(tmp_path / "models"))
    from_export = find_noisy_labels(str(trained_run), saved_model=str(version),
                                    output=str(tmp_path / "export"), grid=0, html=0)
    from_checkpoint = find_noisy_labels(str(trained_run), output=str(tmp_path / "ckpt"), grid=0,
                                        html=0)
    assert from_export == pytest.approx(from_checkpoint, abs=1e-4)
    assert not (tmp_path / "export" / "noisy_labels.png").exists()


def test_the_finder_scores_through_vmf_and_a_proxy_runs_proxies(trained_run, tmp_path):
    summary = find_noisy_labels(str(trained_run), output=str(tmp_path / "vmf"), grid=0, html=0,
                                scoring="vmf")
    assert summary["scoring"] == "vmf" and summary["roc_auc"] > 0.6
    with pytest.raises(ValueError, match="MemoryContrastiveLoss has none"):
        find_noisy_labels(str(trained_run), output=str(tmp_path / "p"), scoring="proxies")
    config = default.get_config()
    config.loss.name, config.selector.scoring = "soft_triple", "proxies"
    config.loss.soft_triple.centers_per_class = 2
    config.train.steps, config.train.eval_every = 20, 20
    train(config, str(tmp_path / "proxy_run"), verbose=0)
    summary = find_noisy_labels(str(tmp_path / "proxy_run"), output=str(tmp_path / "proxies"),
                                grid=0, html=0, neighbours=0, scoring="proxies")
    assert summary["scoring"] == "proxies" and summary["samples"] == 4000
    # The probabilities are the softmax over the run's own proxies, at the label.
    with (tmp_path / "proxies" / "noisy_labels.csv").open() as file:
        rows = sorted(csv.DictReader(file), key=lambda row: int(row["sample"]))[:50]
    _, model = Run(str(tmp_path / "proxy_run")).restore()
    train_split, _ = Run(str(tmp_path / "proxy_run")).splits()
    preprocessing = factories.preprocessing(config).for_split(train_split)
    images = tf.stack([preprocessing.eval_view(image) for image in train_split.pixels[:50]])
    logits = model.batch_loss.class_similarity(model(images, training=False)) / 0.1
    expected = tf.nn.softmax(logits).numpy()[np.arange(50), train_split.labels[:50]]
    np.testing.assert_allclose([float(row["clean_probability"]) for row in rows], expected,
                               rtol=1e-3)
    with pytest.raises(ValueError, match="an export holds the encoder only"):
        find_noisy_labels(str(tmp_path / "proxy_run"), saved_model=str(tmp_path / "models"),
                          scoring="proxies")


def _verdict_rows(path):
    with path.open() as file:
        return list(csv.DictReader(file))


def _write_rows(path, rows):
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_the_finders_suggested_drops_train_as_verdicts(trained_run, tmp_path):
    summary = find_noisy_labels(str(trained_run), output=str(tmp_path), grid=0, html=0,
                                suggest_drop=0.5)
    rows = _verdict_rows(tmp_path / "noisy_labels.csv")
    assert summary["suggested_drops"] == 2000
    assert [r["verdict"] for r in rows] == ["drop"] * 2000 + [""] * 2000
    wrong_dropped = sum(int(r["is_wrong"]) for r in rows[:2000])
    config = default.get_config()   # the run's data, its noise included
    config.data.verdicts = str(tmp_path / "noisy_labels.csv")
    config.train.steps, config.train.eval_every = 10, 10
    train_split, _ = load_splits(config)
    noisy = json.loads((trained_run / "data.json").read_text())["noise"]["noisy_samples"]
    assert len(train_split) == 2000
    assert int(train_split.is_noisy.sum()) == noisy - wrong_dropped < 0.3 * 2000
    train(config, str(tmp_path / "second_pass"), verbose=0)
    data = json.loads((tmp_path / "second_pass" / "data.json").read_text())
    assert data["train"]["samples"] == 2000
    assert data["verdicts"] == {"file": config.data.verdicts, "dropped": 2000, "relabelled": 0,
                                "sha256": hashlib.sha256(
                                    (tmp_path / "noisy_labels.csv").read_bytes()).hexdigest()}


@pytest.mark.parametrize("edit, message", [
    # Another noise seed gives other labels: the verdicts name other images.
    (lambda rows, config: setattr(config.data, "seed", 1),
     r"line \d+: sample \d+ has label \d+ in the training split, not \d+ \(verdicts of "
     r"another split or noise seed\?\)"),
    (lambda rows, config: rows[0].update(verdict="relabel", new_label="3"),
     "relabel verdicts on a split whose ground truth is known"),
    (lambda rows, config: rows[5].update(verdict="remove"),
     r"line 7: verdict 'remove': expected empty, keep, drop or relabel"),
    (lambda rows, config: rows.append(dict(rows[0])), r"is listed twice \(first on line 2\)"),
])
def test_verdicts_that_do_not_fit_the_split_are_refused_before_the_workdir(
        trained_run, tmp_path, edit, message):
    find_noisy_labels(str(trained_run), output=str(tmp_path), grid=0, html=0)
    rows = _verdict_rows(tmp_path / "noisy_labels.csv")
    config = default.get_config()
    edit(rows, config)
    _write_rows(tmp_path / "verdicts.csv", rows)
    config.data.verdicts = str(tmp_path / "verdicts.csv")
    with pytest.raises(DataError, match=message):
        train(config, str(tmp_path / "run"), verbose=0)
    assert not (tmp_path / "run").exists()


def test_the_readme_review_commands_run_as_written(trained_run, tmp_path):
    section = markdown.section((ROOT / "README.md").read_text(),
                               "Review, then train on the verdicts")
    second, further = markdown.shell_blocks(section)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "x").symlink_to(trained_run)
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    for block, listed, run in ((second, "runs/x/noisy_labels.csv", "x-reviewed"),
                               (further, "runs/x-reviewed/list/noisy_labels.csv", "x-third")):
        # The one change: short runs (configs/default.py trains 600 steps).
        script = block.rstrip() + " --config.train.steps=10 --config.train.eval_every=10"
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path,
                                env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
        assert f"Verdicts of {listed} (data.verdicts): 1600 samples dropped, " \
               "0 relabelled; 2400 train." in result.stdout
        data = json.loads((tmp_path / "runs" / run / "data.json").read_text())
        assert data["verdicts"]["dropped"] == 1600 and data["train"]["samples"] == 2400
    # The further list covers the whole split as loaded, dropped samples too.
    with open(tmp_path / "runs" / "x-reviewed" / "list" / "noisy_labels.csv") as listed:
        assert sum(1 for _ in listed) == 4000 + 1
