r"""Retrieval metrics of a trained run, from its checkpoint or an exported SavedModel.

    python -m pipelines.evaluate --workdir=runs/default [--saved_model=/models/prism/1]

Embeds the run's evaluation split (or --split=train) and prints P@1,
Recall@1/2/4/8, R-Precision and MAP@R (leave-one-out, self excluded) as
JSON. The workdir supplies the data config either way. A checkpoint is
embedded under the run's `train.strategy`, each batch split across the
replicas (a multi-worker run: across this machine's devices). Exact kNN runs in
TensorFlow a chunk of queries at a time, or in faiss when installed
(`pip install -e ".[faiss]"`).
"""

import json

from absl import app, flags

from . import cli
from .factories import retrieval_on
from .runs import Run

FLAGS = flags.FLAGS


def _define_flags() -> None:
    # Defined only when run as a program, so tests can import the module.
    flags.DEFINE_string("workdir", None, "Training workdir (config, data, checkpoints).")
    flags.DEFINE_string("saved_model", None, "Exported version folder to use instead of the checkpoint.")
    flags.DEFINE_enum("split", "test", ["test", "train"], "Which split to embed.")
    flags.DEFINE_integer("chunk_size", 1024, "Queries per similarity block.")
    flags.DEFINE_enum("backend", "auto", ["auto", "tensorflow", "faiss"],
                      "Exact kNN: chunked TensorFlow, or faiss (auto: faiss when installed).")


def evaluate(workdir: str, saved_model: str = None, split: str = "test",
             chunk_size: int = 1024, backend: str = "tensorflow") -> dict:
    """Metrics of the checkpoint in `workdir`, or of `saved_model`, on `split`."""
    run = Run(workdir)
    _, embed = run.embedder(saved_model)
    train_split, test_split = run.splits()
    return retrieval_on(test_split if split == "test" else train_split, run.config, embed,
                        chunk_size, backend)


def main(argv):
    del argv
    if not FLAGS.workdir:
        raise app.UsageError("--workdir is required")
    with cli.one_line_errors():
        metrics = evaluate(FLAGS.workdir, FLAGS.saved_model, FLAGS.split, FLAGS.chunk_size,
                           FLAGS.backend)
    print(json.dumps(metrics, indent=2))


def run() -> None:
    """The `prism-tf-evaluate` command."""
    cli.run(main, _define_flags)


if __name__ == "__main__":
    run()
