r"""Benchmark: PRISM's noisy-label finder against cleanlab, on the same embeddings.

    pip install -e ".[cleanlab]"
    python -m pipelines.benchmarks.label_issues --runs='runs/finder/*'

For every training workdir (a run with injected noise, so the wrong labels
are known), the training split is embedded once by the run's checkpoint
and scored four ways:
- `prism`: 1 - PRISM's clean probability against leave-one-out class
  centres (temperature 0.1);
- `prism_neighbours`: 1 - the finder's clean score
  (`pipelines.find_noisy_labels`: that probability times the agreement of
  the sample's k nearest neighbours' labels);
- `cleanlab_knn`: cleanlab's kNN-on-features path: class probabilities from
  each sample's k nearest neighbours, its own vote removed (what cleanlab's
  Datalab computes from `features`; Datalab itself needs the `datasets`
  package, so its two steps are run here), then
  `cleanlab.rank.get_label_quality_scores` and
  `cleanlab.filter.find_label_issues`;
- `cleanlab_cv`: out-of-sample class probabilities of a kNN classifier by
  cross-validation (`cleanlab.count.estimate_cv_predicted_probabilities`),
  then the same two cleanlab calls.
Reported per noise setting, mean ± std over the runs: ROC AUC and average
precision of each score, precision / recall among the top (number of wrong
labels), cleanlab's flagged set's precision / recall, and seconds.
"""

import glob
import json
from pathlib import Path
import time
from typing import Callable, Dict, List, Optional, Tuple

from absl import app, flags
import numpy as np

from .common import mean_std
from ..find_noisy_labels import clean_scores, training_embeddings
from ..runs import Run
from prism_tf.files import write_atomically
from prism_tf.label_issues import ranking_metrics

FLAGS = flags.FLAGS
METHODS = ("prism", "prism_neighbours", "cleanlab_knn", "cleanlab_cv")

# (suspicion [N], flagged [N] bool or None) from (embeddings, labels 0..K-1).
Scorer = Callable[[np.ndarray, np.ndarray], Tuple[np.ndarray, Optional[np.ndarray]]]


def _define_flags() -> None:
    flags.DEFINE_list("runs", None, "Training workdirs (glob patterns allowed).")
    flags.DEFINE_integer("k", 10, "Neighbours for cleanlab's kNN class probabilities.")
    flags.DEFINE_integer("folds", 5, "Cross-validation folds for cleanlab_cv.")
    flags.DEFINE_string("output", None, "Markdown file for the table (printed either way).")


def prism_scores(embeddings: np.ndarray, labels: np.ndarray, neighbours: int = 0):
    _, _, score, _ = clean_scores(embeddings, labels, int(labels.max()) + 1, neighbours)
    return 1.0 - np.nan_to_num(score, nan=1.0), None


def _cleanlab_scores(labels: np.ndarray, pred_probs: np.ndarray):
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
    return (1.0 - get_label_quality_scores(labels, pred_probs),
            find_label_issues(labels, pred_probs))


def cleanlab_knn_scores(embeddings: np.ndarray, labels: np.ndarray, k: int = 10):
    from sklearn.neighbors import KNeighborsClassifier
    votes = KNeighborsClassifier(n_neighbors=k + 1).fit(embeddings, labels).predict_proba(
        embeddings)
    # Each sample is its own nearest neighbour: take its vote back out.
    own = np.eye(votes.shape[1])[labels]
    return _cleanlab_scores(labels, (votes * (k + 1) - own) / k)


def cleanlab_cv_scores(embeddings: np.ndarray, labels: np.ndarray, k: int = 10,
                       folds: int = 5):
    from cleanlab.count import estimate_cv_predicted_probabilities
    from sklearn.neighbors import KNeighborsClassifier
    pred_probs = estimate_cv_predicted_probabilities(
        embeddings, labels, KNeighborsClassifier(n_neighbors=k), cv_n_folds=folds, seed=0)
    return _cleanlab_scores(labels, pred_probs)


def compare(embeddings: np.ndarray, labels: np.ndarray, is_wrong: np.ndarray,
            scorers: Dict[str, Scorer]) -> Dict[str, Dict[str, float]]:
    """Each scorer's ranking metrics (and flagged set) on one labelled set."""
    # cleanlab wants classes 0..K-1, each present.
    _, labels = np.unique(labels, return_inverse=True)
    results = {}
    for name, scorer in scorers.items():
        start = time.perf_counter()
        suspicion, flagged = scorer(embeddings, labels)
        metrics = {"seconds": time.perf_counter() - start,
                   **ranking_metrics(suspicion, is_wrong)}
        if flagged is not None:
            found = int((flagged & is_wrong).sum())
            metrics["flagged_precision"] = found / max(int(flagged.sum()), 1)
            metrics["flagged_recall"] = found / int(is_wrong.sum())
        results[name] = metrics
    return results


def benchmark(workdirs: List[str], k: int = 10, folds: int = 5
              ) -> Dict[Tuple[str, float], List[Dict[str, Dict[str, float]]]]:
    """`compare` on every run, grouped by its injected noise (kind, rate)."""
    scorers = {"prism": prism_scores,
               "prism_neighbours": lambda z, y: prism_scores(z, y, k),
               "cleanlab_knn": lambda z, y: cleanlab_knn_scores(z, y, k),
               "cleanlab_cv": lambda z, y: cleanlab_cv_scores(z, y, k, folds)}
    groups: Dict[Tuple[str, float], List[Dict[str, Dict[str, float]]]] = {}
    for workdir in workdirs:
        config, split, _, index, embeddings = training_embeddings(Run(workdir))
        is_wrong = split.is_noisy[index]
        if not is_wrong.any():
            raise ValueError(f"{workdir}: no wrong labels are known (inject noise or give a "
                             "clean list): nothing to find")
        noise = (config.data.injected_noise.kind, config.data.injected_noise.rate)
        groups.setdefault(noise, []).append(
            compare(embeddings, split.labels[index], is_wrong, scorers))
    return groups



def table(groups: Dict[Tuple[str, float], List[Dict[str, Dict[str, float]]]]) -> str:
    """Markdown: one row per (noise, method), statistics over the runs."""
    columns = ("roc_auc", "average_precision", "precision_at_wrong_count",
               "flagged_precision", "flagged_recall", "seconds")
    lines = ["| noise | method | runs | ROC AUC | average precision | precision at "
             "#wrong | flagged precision | flagged recall | seconds |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for (kind, rate), runs in groups.items():
        for method in METHODS:
            cells = [mean_std([run[method][c] for run in runs if c in run[method]])
                     for c in columns]
            lines.append(f"| {kind} {rate:g} | {method} | {len(runs)} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    workdirs = sorted({path for pattern in FLAGS.runs or [] for path in glob.glob(pattern)})
    if not workdirs:
        raise app.UsageError(f"--runs matched no workdir: {FLAGS.runs}")
    groups = benchmark(workdirs, FLAGS.k, FLAGS.folds)
    text = table(groups)
    print(text)
    if FLAGS.output:
        write_atomically(Path(FLAGS.output), text)
        write_atomically(Path(FLAGS.output + ".json"), json.dumps(
            {f"{kind} {rate:g}": runs for (kind, rate), runs in groups.items()}, indent=2))


if __name__ == "__main__":
    _define_flags()
    app.run(main)
