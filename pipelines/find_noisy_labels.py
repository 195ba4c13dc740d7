r"""List the training labels a trained run finds suspicious, most suspicious first.

    python -m pipelines.find_noisy_labels --workdir=runs/x [--saved_model=models/prism/1]

Embeds the run's training split (evaluation preprocessing; the labels the
run trained on, injected noise included) and scores every sample's label
(`prism_tf.label_issues`) twice: its clean probability against the whole
split, leaving the sample out (PRISM's score through the selector's
--scoring: class centres by default, `vmf`, or `proxies` for a run trained
with a proxy loss, from its checkpoint; at --temperature), and its
agreement with its --neighbours nearest samples' labels. The clean score
is their product (--neighbours=0: the clean probability alone). Writes beside the run (or to --output):
- `noisy_labels.csv`: rank, sample (index in the split), path (file
  sources), given label, most likely label, their class names (where the
  source has them: empty otherwise), clean probability,
  neighbour agreement, clean score, and is_wrong where the ground truth
  is known; lowest clean score first. Samples alone in their class cannot
  be scored: they come last, with an empty score, and are counted. Then
  `verdict` and `new_label`, to fill in (`drop`, `relabel` with a
  new_label, `keep` or empty) and train on with
  `--config.data.verdicts=<the CSV>` (`prism_tf.data.verdicts`);
  --suggest_drop fills `drop` into that share of the scored samples,
  most suspicious first.
- `noisy_labels.png`: the first --grid suspects in CSV order, row by row,
  each with its rank, sample, given and most likely label (class names
  where the source has them) and clean score, under a legend (framed red /
  green where the ground truth says wrong / right);
- `noisy_labels.html` and its images in `noisy_labels_images/`: the first
  --html suspects on a page a person opens from disk to review them
  (`prism_tf.review_page`): each image beside its given and most likely
  label, scores and --examples typical training images of both classes
  (the samples of the class with the highest clean scores); sortable,
  paged, filtered by class; verdicts set there download as a CSV that
  `--config.data.verdicts` reads;
- `noisy_labels.json`: counts, the CSV's sha256 and, with ground truth
  (injected noise or a CSV clean list), ROC AUC, average precision and
  precision / recall among the top k suspects. Written last (the old one
  removed first), so it always describes the CSV beside it.
"""

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Dict, Optional, Tuple

from absl import app, flags
import numpy as np
import tensorflow as tf

from . import cli
from .runs import Run
from prism_tf.data.pipeline import sample_dataset
from prism_tf.files import remove, write_atomically, writing_folder
from prism_tf.label_issues import (clean_probabilities, neighbour_agreement,
                                   ranking_metrics)
from prism_tf.monitoring import FRAME_LEGEND, captioned_grid, displayable
from prism_tf.review_page import review_page_html
from prism_tf.scoring import SCORINGS, Scoring

FLAGS = flags.FLAGS
TOP_K = (10, 100, 1000)
OUTPUTS = ("noisy_labels.json", "noisy_labels.png", "noisy_labels.html", "noisy_labels_images")


def _define_flags() -> None:
    # Defined only when run as a program, so tests can import the module.
    flags.DEFINE_string("workdir", None, "Training workdir (config, data, checkpoints).")
    flags.DEFINE_string("saved_model", None, "Exported version folder to use instead of the checkpoint.")
    flags.DEFINE_string("output", None, "Folder for the CSV, PNG and JSON; default: the workdir.")
    flags.DEFINE_integer("grid", 64, "Suspects shown in the PNG grid (0: none).")
    flags.DEFINE_integer("html", 1000, "Suspects on the review page noisy_labels.html "
                         "(0: no page).")
    flags.DEFINE_integer("examples", 4, "Typical training images shown beside each class "
                         "on the review page.")
    flags.DEFINE_integer("chunk_size", 4096, "Samples scored at a time.")
    flags.DEFINE_integer("neighbours", 10, "Nearest neighbours whose labels are compared "
                         "(0: class centres only).")
    flags.DEFINE_float("temperature", 0.1, "Divides the class-centre logits.")
    flags.DEFINE_enum("scoring", "centers", sorted(SCORINGS),
                      "How a sample is scored against each class (prism_tf.scoring).")
    flags.DEFINE_float("suggest_drop", 0.0, "Share of the scored samples, most suspicious "
                       "first, whose verdict is filled in as `drop` (0: none).")
    flags.DEFINE_bool("before_verdicts", False, "Score the training split as loaded before "
                      "the run's data.verdicts (every sample, its given label), so a run on "
                      "the same data can read the list: a further pass.")


def training_embeddings(run: Run, saved_model: Optional[str] = None,
                        before_verdicts: bool = False):
    """(config, training split, preprocessing, index, embeddings) of a run:
    its training split (the labels it trained on; `before_verdicts`: as
    loaded before its `data.verdicts`) embedded in evaluation
    preprocessing by its checkpoint (under the run's strategy) or
    `saved_model` (`Run.embedder`); `index` [N] says which
    sample of the split each embedding row is (unreadable images left out)."""
    split, _ = run.splits(before_verdicts)
    preprocessing, index, embeddings = run.embed_split(split, run.embedder(saved_model))
    return run.config, split, preprocessing, index, embeddings


def run_scoring(run: Run, name: str, saved_model: Optional[str] = None) -> Scoring:
    """The scoring `name` (`prism_tf.scoring.SCORINGS`) for a run's set; one
    that reads the batch loss (ProxySim: the proxies) attached to the run's,
    from its latest checkpoint (an export holds the encoder only)."""
    if name not in SCORINGS:
        raise ValueError(f"--scoring={name}: expected one of {sorted(SCORINGS)}")
    scoring = SCORINGS[name]()
    if scoring.reads_batch_loss:
        if saved_model:
            raise ValueError(f"--scoring={name} reads the run's batch loss from its "
                             "checkpoint; an export holds the encoder only: leave out "
                             "--saved_model")
        scoring.attach(run.restore()[1].batch_loss)
    return scoring


def clean_scores(embeddings: np.ndarray, labels: np.ndarray, num_classes: int,
                 neighbours: int = 10, temperature: float = 0.1, chunk_size: int = 4096,
                 scoring: Optional[Scoring] = None
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(clean probability, neighbour agreement (1 with `neighbours` = 0),
    clean score = their product, most likely label), each [N]; `scoring`
    None: class centres."""
    p_clean, most_likely = clean_probabilities(embeddings, labels, num_classes,
                                               temperature, chunk_size, scoring)
    agreement = (neighbour_agreement(embeddings, labels, neighbours) if neighbours
                 else np.ones_like(p_clean))
    return p_clean, agreement, p_clean * agreement, most_likely


def find_noisy_labels(workdir: str, saved_model: Optional[str] = None,
                      output: Optional[str] = None, grid: int = 64,
                      chunk_size: int = 4096, neighbours: int = 10,
                      temperature: float = 0.1, scoring: str = "centers",
                      suggest_drop: float = 0.0, before_verdicts: bool = False,
                      html: int = 1000, examples: int = 4) -> Dict[str, float]:
    """Writes the ranked list, grid and summary; returns the summary.

    Each file is written atomically. The summary goes last and the old one
    is removed first, so a summary beside a list always describes it (its
    `csv_sha256` says which): a run killed between the files leaves a list
    without one.
    """
    for ok, flag, value, expected in (
            (grid >= 0, "grid", grid, "0 (no picture) or more suspects"),
            (html >= 0, "html", html, "0 (no review page) or more suspects"),
            (examples >= 0, "examples", examples, "0 or more images per class"),
            (chunk_size > 0, "chunk_size", chunk_size, "a positive number of samples"),
            (np.isfinite(temperature) and temperature > 0, "temperature", temperature,
             "a finite number > 0 (it divides the class-centre logits)"),
            (0.0 <= suggest_drop < 1.0, "suggest_drop", suggest_drop,
             "a share in [0, 1) of the scored samples")):
        if not ok:
            raise ValueError(f"--{flag}={value}: expected {expected}")
    run = Run(workdir)
    scorer = run_scoring(run, scoring, saved_model)
    _, split, preprocessing, index, embeddings = training_embeddings(run, saved_model,
                                                                     before_verdicts)
    output = Path(output or workdir)
    labels = split.labels[index]
    if not 0 <= neighbours < len(index):
        raise ValueError(f"--neighbours={neighbours}: expected 0 (class centres only) to "
                         f"{len(index) - 1} (the samples but one)")
    p_clean, agreement, score, most_likely = clean_scores(
        embeddings, labels, split.num_classes, neighbours, temperature, chunk_size, scorer)
    # Lowest clean score first; unscorable samples (NaN) last.
    order = np.argsort(np.where(np.isnan(score), np.inf, score), kind="stable")
    known = bool(split.is_noisy.any())
    scored = ~np.isnan(score)
    summary = {"samples": int(len(index)), "left_out_unreadable": int(len(split) - len(index)),
               "unscorable_single_sample_classes": int((~scored).sum()),
               "scoring": scoring, "neighbours": neighbours, "temperature": temperature,
               "ground_truth": known,
               "suggested_drops": int(round(suggest_drop * scored.sum()))}
    if known:
        summary.update(ranking_metrics(1.0 - score[scored], split.is_noisy[index][scored],
                                       top_k=[k for k in TOP_K if k < scored.sum()]))
    output.mkdir(parents=True, exist_ok=True)
    # What this call writes is removed first, and what it does not write
    # (--grid=0, --html=0) too: nothing beside the new list describes an old one.
    for name in OUTPUTS:
        remove(output / name)
    table = _csv(split, index[order], labels[order], most_likely[order],
                 np.stack([p_clean, agreement, score], 1)[order], known,
                 summary["suggested_drops"])
    write_atomically(output / "noisy_labels.csv", table)
    summary["csv_sha256"] = hashlib.sha256(table.encode()).hexdigest()
    if grid:
        shown = order[:grid]
        _write_grid(output / "noisy_labels.png", split, index[shown], labels[shown],
                    most_likely[shown], score[shown], preprocessing, known)
    if html:
        _write_review_page(output, workdir, split, index, order[:html], labels, most_likely,
                           np.stack([p_clean, agreement, score], 1), known, summary,
                           preprocessing.channels, examples)
    write_atomically(output / "noisy_labels.json", json.dumps(summary, indent=2))
    return summary


def _csv(split, index, labels, most_likely, scores, known: bool, drops: int) -> str:
    """The ranked list as CSV text; `scores` [N, 3]: clean probability,
    neighbour agreement, clean score; the first `drops` rows' verdict `drop`."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["rank", "sample", "path", "given_label", "most_likely_label",
                     "given_name", "most_likely_name",
                     "clean_probability", "neighbour_agreement", "clean_score"]
                    + (["is_wrong"] if known else []) + ["verdict", "new_label"])
    for rank, (i, label, best, values) in enumerate(zip(index, labels, most_likely, scores), 1):
        names = ([split.class_name(label), split.class_name(best)]
                 if split.class_names is not None else ["", ""])
        row = ([rank, int(i), split.paths[i] if split.paths is not None else "", int(label),
                int(best)] + names + ["" if np.isnan(v) else f"{v:.6g}" for v in values])
        writer.writerow(row + ([int(split.is_noisy[i])] if known else [])
                        + ["drop" if rank <= drops else "", ""])
    return text.getvalue()


def _write_grid(path: Path, split, index, labels, most_likely, scores, preprocessing,
                known: bool) -> None:
    """The first suspects as captioned tiles: CSV rank and sample, given ->
    most likely label, clean score; framed by the ground truth if known."""
    images = next(iter(sample_dataset(split, channels=preprocessing.channels, indices=index)
                       .map(lambda s: preprocessing.eval_view(s["image"]))
                       .batch(len(index))))
    captions = [[f"#{rank} sample {int(i)}", f"given {split.class_name(label)}",
                 f"likely {split.class_name(best)}",
                 "score -" if np.isnan(score) else f"score {score:.3g}"]
                for rank, (i, label, best, score)
                in enumerate(zip(index, labels, most_likely, scores), 1)]
    legend = [f"noisy_labels.csv ranks 1-{len(index)}, most suspicious first: given label, "
              "most likely label, clean score",
              FRAME_LEGEND if known else "frame: grey (no ground truth for these labels)"]
    picture = captioned_grid(displayable(images).numpy(), captions,
                             np.where(split.is_noisy[index], 1, 2) if known else None,
                             legend=legend)
    write_atomically(path, tf.io.encode_png(picture).numpy())


def _write_review_page(output: Path, workdir: str, split, index, shown, labels, most_likely,
                       scores, known: bool, summary, channels: int, examples: int) -> None:
    """`noisy_labels.html` on the suspects at rows `shown` (of the embedded
    samples: `index` says which sample each row is), with the `examples`
    highest-scored samples of each class they name; their images go to
    `noisy_labels_images/` first (a whole folder replaced at once)."""
    classes = np.union1d(labels[shown], most_likely[shown])
    # Typical members: the class's samples with the highest clean scores.
    by_score = np.argsort(-np.nan_to_num(scores[:, 2], nan=-np.inf), kind="stable")
    typical = {int(c): [int(index[row]) for row in by_score[labels[by_score] == c][:examples]]
               for c in classes}
    table = {"rank": list(range(1, len(shown) + 1)), "sample": index[shown].tolist(),
             "path": ([str(p) for p in split.paths[index[shown]]] if split.paths is not None
                      else [""] * len(shown)),
             "given_label": labels[shown].tolist(),
             "most_likely_label": most_likely[shown].tolist(),
             **{name: scores[shown, column].tolist() for column, name in enumerate(
                 ("clean_probability", "neighbour_agreement", "clean_score"))}}
    if known:
        table["is_wrong"] = split.is_noisy[index[shown]].astype(int).tolist()
    samples = np.unique(np.concatenate([index[shown]] + [np.asarray(v, np.int64)
                                                        for v in typical.values()]))
    folder = output / "noisy_labels_images"
    with writing_folder(folder) as temporary:
        suffix = _write_thumbnails(temporary, split, samples, channels)
    write_atomically(output / "noisy_labels.html", review_page_html(
        table, typical, split.class_names, folder.name, suffix, title=Path(workdir).name,
        summary=summary, list_id=summary["csv_sha256"]))


THUMBNAIL_SIZE = 128


def _write_thumbnails(folder: Path, split, samples: np.ndarray, channels: int) -> str:
    """`folder/<sample><suffix>` for each sample: its image as loaded (not
    cropped), fit into `THUMBNAIL_SIZE` pixels; PNG for in-memory pixel
    arrays (small and exact), JPEG for photos. Returns the suffix."""
    as_png = split.pixels is not None

    def thumbnail(sample):
        image = sample["image"]
        side = tf.reduce_max(tf.shape(image)[:2])
        image = tf.cond(side > THUMBNAIL_SIZE,
                        lambda: tf.cast(tf.round(tf.image.resize(
                            image, [THUMBNAIL_SIZE, THUMBNAIL_SIZE], preserve_aspect_ratio=True,
                            antialias=True)), tf.uint8),
                        lambda: image)
        return tf.io.encode_png(image) if as_png else tf.io.encode_jpeg(image, quality=90)

    suffix = ".png" if as_png else ".jpg"
    encoded = sample_dataset(split, channels=channels, indices=samples).map(
        thumbnail, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    for sample, data in zip(samples, encoded.as_numpy_iterator()):
        (folder / f"{int(sample)}{suffix}").write_bytes(data)
    return suffix


def main(argv):
    del argv
    if not FLAGS.workdir:
        raise app.UsageError("--workdir is required")
    with cli.one_line_errors():
        summary = find_noisy_labels(FLAGS.workdir, FLAGS.saved_model, FLAGS.output,
                                    FLAGS.grid, FLAGS.chunk_size, FLAGS.neighbours,
                                    FLAGS.temperature, FLAGS.scoring, FLAGS.suggest_drop,
                                    FLAGS.before_verdicts, FLAGS.html, FLAGS.examples)
    print(json.dumps(summary, indent=2))


def run() -> None:
    """The `prism-tf-find-noisy-labels` command."""
    cli.run(main, _define_flags)


if __name__ == "__main__":
    run()
