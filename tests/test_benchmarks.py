import numpy as np
import pytest

from configs import default
from pipelines.benchmarks.accuracy import Run, benchmark, parse_noise, run_config, table


def _tiny():
    config = default.get_config()
    config.train.steps, config.train.eval_every = 10, 10
    return config


def test_method_and_noise_overrides():
    base = _tiny()
    base.memory.start_step = 5
    config = run_config(base, Run("semihard_prism", "small_cluster", 0.25, 2), 0.1)
    assert (config.loss.name, config.memory.weight,
            config.memory.start_step) == ("triplet_semihard", 0.0, 0)
    assert run_config(base, Run("mcl_prism", "none", 0.0, 0), 0.1).memory.start_step == 5
    assert run_config(base, Run("mcl_prism", "none", 0.0, 0), 0.1).selector.noise_rate == 0.1
    assert (config.data.injected_noise.kind, config.data.injected_noise.rate,
            config.selector.noise_rate, config.data.seed) == ("small_cluster", 0.25, 0.25, 2)
    assert run_config(_tiny(), Run("xbm", "none", 0.0, 0), 0.1).selector.noise_rate == 0.0
    auto = run_config(_tiny(), Run("semihard_prism_auto", "symmetric", 0.5, 0), 0.1)
    assert (auto.selector.noise_rate, auto.loss.name) == ("auto", "triplet_semihard")
    with pytest.raises(ValueError, match="expected kind:rate"):
        parse_noise("symmetric:half")


def _column(markdown, name):
    lines = markdown.splitlines()
    index = [cell.strip() for cell in lines[0].split("|")].index(name)
    return [line.split("|")[index].strip() for line in lines[2:]]


def test_grid_runs_and_tabulates(tmp_path):
    base = _tiny()
    base.train.eval_every, base.memory.start_step = 5, 5
    results = benchmark(base, str(tmp_path), ["xbm", "mcl_prism"],
                        ["symmetric:0.5", "none:0"], [0])
    # A second seed of one cell: its row tabulates both (the grid is the same code).
    results.update(benchmark(base, str(tmp_path), ["mcl_prism"], ["symmetric:0.5"], [1]))
    assert len(results) == 5 and all("precision_at_1" in m for m in results.values())
    markdown = table(results)
    assert "| mcl_prism | symmetric 0.5 | 2 |" in markdown and "| xbm | symmetric 0.5 | 1 |" in markdown
    assert [cell == "n/a" for cell in _column(markdown, "noise recall")] == [
        False, True, False, True]
    run = results[Run("xbm", "none", 0.0, 0)]
    assert run["precision_at_1_at_memory_start"] == run["precision_at_1_step_5"]
    assert all(cell != "-" for cell in _column(markdown, "P@1 at memory start"))
    assert _column(markdown, "noise estimate")[0] == "-"     # xbm: no selector
    assert _column(markdown, "noise estimate")[2] != "-"
    assert _column(markdown, "separability")[0] == "-" != _column(markdown, "separability")[2]
    # Started again, finished runs report their metrics instead of training.
    assert benchmark(base, str(tmp_path), ["xbm"], ["symmetric:0.5"], [0]) == {
        Run("xbm", "symmetric", 0.5, 0): results[Run("xbm", "symmetric", 0.5, 0)]}
    with pytest.raises(ValueError, match="unknown method"):
        benchmark(_tiny(), str(tmp_path), ["arcface"], ["none:0"], [0])


def test_python_loop_baseline_selects_like_the_library():
    import numpy as np

    from pipelines.benchmarks.common import filled_bank, unit_rows
    from pipelines.benchmarks.selector import PythonLoopSelector
    from prism_tf import PrismSelector
    from prism_tf.selector import NO_GUARDS

    rng = np.random.default_rng(1)
    bank = filled_bank(rng, 500, 16, 30)
    ours, loop = PrismSelector(0.5, 30, **NO_GUARDS), PythonLoopSelector(0.5, 30)
    for _ in range(3):
        z, labels = unit_rows(rng, 64, 16), rng.integers(0, 30, 64)
        expected = loop(z, labels, bank.embeddings.numpy(), bank.labels.numpy(), 30)
        np.testing.assert_array_equal(ours(z, labels, bank)[0].numpy(), expected)


def test_untrained_row_is_one_per_seed_and_deterministic(tmp_path):
    results = benchmark(_tiny(), str(tmp_path), ["untrained"], ["symmetric:0.5", "none:0"], [0])
    assert list(results) == [Run("untrained", "none", 0.0, 0)]
    metrics = results[Run("untrained", "none", 0.0, 0)]
    assert 0.0 < metrics["precision_at_1"] <= 1.0 and "kept_purity" not in metrics
    assert benchmark(_tiny(), str(tmp_path), ["untrained"], ["none:0"], [0]) == results
    assert "| untrained | none 0 | 1 |" in table(results)
    assert _column(table(results), "noise recall") == ["n/a"]


@pytest.mark.parametrize("source", ["allocator", "resident", "unavailable"])
def test_scale_cell_reports_time_and_memory(monkeypatch, tmp_path, source):
    import tensorflow as tf
    from pipelines.benchmarks import scale

    # Whether the CPU allocator keeps statistics depends on the machine (an
    # AMD EPYC one keeps none), so each source is forced here.
    if source == "allocator":
        monkeypatch.setattr(tf.config.experimental, "reset_memory_stats", lambda device: None)
        monkeypatch.setattr(tf.config.experimental, "get_memory_info",
                            lambda device: {"current": 4096, "peak": 4096 + 2 ** 20})
    else:
        def no_statistics(device):
            raise ValueError(f"Cannot reset memory stats for device '{device}'")
        monkeypatch.setattr(tf.config.experimental, "reset_memory_stats", no_statistics)
        if source == "unavailable":
            monkeypatch.setattr(scale.PeakMemory, "CLEAR_REFS", tmp_path / "none" / "clear_refs")
    cell = scale.measure_cell(memory=256, classes=10, dim=8, batch=4, seconds=0.0)
    assert cell["memory source"] == source
    # Rows (8 floats + 1 label) and class statistics (8 floats + 1 count), 4 bytes each.
    assert cell["bank MiB"] * 2 ** 20 == pytest.approx(4 * (256 * 9 + 10 * 9), abs=16)
    for name in ("memory step", "memory loss + gradient"):
        for jit in (False, True):
            assert cell[f"{name} | jit={jit} | ms"] > 0
            peak = cell[f"{name} | jit={jit} | peak MiB"]
            assert {"allocator": peak == 1.0, "resident": peak is not None and peak >= 0,
                    "unavailable": peak is None}[source]
    lines = scale.table({(256, 10): cell}).splitlines()
    assert lines[2].startswith("| 256 | 10 | 0 |")
    assert ("n/a / n/a" in lines[2]) == (source == "unavailable")
    assert lines[-1] == scale.MEMORY_SOURCES[source]


def test_finder_benchmark_times_scoring_and_counts_unscorable_samples():
    from pipelines.benchmarks.finder import benchmark, table
    results = benchmark([50], [40], dim=8, repeats=2, neighbours=5)
    assert results[(50, 40)]["centres"] > 0 and results[(50, 40)]["neighbours"] > 0
    # 50 samples over 40 classes: some classes hold a single sample.
    assert 0 < results[(50, 40)]["unscorable"] < 50
    lines = table(results, 8, 5).splitlines()
    assert "5 nearest neighbours" in lines[0] and lines[2].startswith("| 50 | 40 | 8 | ")


def test_label_issue_comparison_scores_every_method_on_the_same_embeddings():
    pytest.importorskip("cleanlab")
    import numpy as np
    from pipelines.benchmarks.label_issues import (METHODS, cleanlab_cv_scores,
                                                   cleanlab_knn_scores, compare, prism_scores,
                                                   table)
    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(6), 40)
    centres = rng.normal(size=(6, 16))
    z = centres[truth] + 0.3 * rng.normal(size=(240, 16))
    z = (z / np.linalg.norm(z, axis=1, keepdims=True)).astype("float32")
    wrong = rng.random(240) < 0.3
    labels = np.where(wrong, (truth + rng.integers(1, 6, 240)) % 6, truth) + 10   # not 0..5
    scorers = {"prism": prism_scores, "prism_neighbours": lambda z, y: prism_scores(z, y, 10),
               "cleanlab_knn": cleanlab_knn_scores, "cleanlab_cv": cleanlab_cv_scores}
    results = compare(z, labels, wrong, scorers)
    for method in METHODS:
        assert results[method]["roc_auc"] > 0.9, method
    assert "flagged_recall" not in results["prism"]
    assert results["cleanlab_knn"]["flagged_recall"] > 0.5
    lines = table({("symmetric", 0.3): [results]}).splitlines()
    assert len(lines) == 2 + len(METHODS) and lines[2].startswith("| symmetric 0.3 | prism | 1 |")


def test_the_hard_sets_halves_share_no_class_and_train_as_csv_lists(tmp_path):
    from configs import noise_benchmark
    from pipelines.benchmarks.hard_sets import fine_halves, write_set
    from pipelines.train import train
    halves = fine_halves()
    tuning, report = (halves[half] for half in ("tuning", "report"))
    assert len(tuning[0]) == len(report[0]) == 160 * 40
    # Disjoint classes: no image of one half looks like the other's (the
    # designs are distinct, so equal pixels would mean a shared draw).
    assert not set(map(bytes, tuning[0][:200])) & set(map(bytes, report[0]))
    # A few classes of the tuning half, written as a user's data and trained on.
    images, labels = tuning
    few = labels % 20 == 0   # 8 classes: 4 train, 4 test
    _, few_labels = np.unique(labels[few], return_inverse=True)
    assert write_set(tmp_path / "set", images[few], few_labels) == (160, 160)
    config = noise_benchmark.get_config("hard")
    config.data.csv.data_dir = str(tmp_path / "set")
    config.train.steps, config.train.eval_every, config.train.batch_size = 4, 4, 16
    config.selector.noise_rate = "auto"
    metrics = train(config, str(tmp_path / "run"), verbose=0)
    assert metrics["step"] == 4 and 0.0 <= metrics["separability"] <= 1.0


def test_the_review_page_benchmark_times_the_finder_and_opens_the_page(tmp_path):
    from pipelines.benchmarks.review_page import open_times, table, write_times
    from pipelines.train import train
    from tests import browser
    train(_tiny(), str(tmp_path / "run"), verbose=0)
    written = write_times(str(tmp_path / "run"), [0, 30], 1, tmp_path / "scratch")
    assert written[0]["page_bytes"] == written[0]["image_files"] == 0
    # 30 suspects and up to 4 typical images of each class they name.
    assert written[30]["page_bytes"] > 0 and written[30]["image_files"] >= 30
    lines = table(written).splitlines()
    assert lines[2].startswith("| 0 | ") and " | 1.00 | " in lines[2]
    with browser.chromium_page():   # skipped (failed where required) without Chromium
        pass
    opened = open_times(tmp_path / "scratch" / "30-0" / "noisy_labels.html", 2)
    assert opened["ms"] > 0 and opened["errors"] == []
    assert opened["position"] == "page 1 of 1 (30 of 30 suspects)"


def test_the_embedding_table_times_eager_and_graph_calls_of_the_same_model():
    from pipelines.benchmarks.evaluation import embed_times
    times = embed_times(images=20, batch_size=8, image_size=16)
    assert list(times) == ["eager", "as_graph, first pass (traces)", "as_graph"]
    assert all(seconds > 0 for seconds in times.values())
