r"""Export a trained run's encoder as a SavedModel for TF Serving.

    python -m pipelines.export --workdir=runs/default --export_dir=/models/prism

Writes `EXPORT_DIR/<version>/` (next integer version unless --version),
atomically; see `prism_tf.export` for the two signatures and the
`assets.extra/` files (preprocessing contract, TF Serving warm-up requests).
A run that has not reached `train.steps` is refused unless
--allow_unfinished; an existing version is never overwritten. --tflite adds
`<version>/model.tflite`, the float signature for TensorFlow Lite (the
bytes signature stays SavedModel-only). --index (a folder `prism-tf-index`
wrote) adds the `search` and `search_encoded` signatures: each query's
--search_k nearest gallery rows, exact.
"""

from pathlib import Path
from typing import Optional

from absl import app, flags

from . import cli
from .checks import ConfigError
from .runs import Run
from prism_tf.export import export_saved_model
from prism_tf.search import GalleryIndex

FLAGS = flags.FLAGS


def _define_flags() -> None:
    # Defined only when run as a program, so tests can import the module.
    flags.DEFINE_string("workdir", None, "Training workdir whose latest checkpoint is exported.")
    flags.DEFINE_string("export_dir", None, "Folder TF Serving watches.")
    flags.DEFINE_integer("version", None, "Version number; default: the next free one.")
    flags.DEFINE_bool("allow_unfinished", False,
                      "Export the latest checkpoint of a run that has not finished its steps.")
    flags.DEFINE_bool("tflite", False, "Also write <version>/model.tflite: the float "
                      "signature for TensorFlow Lite (not the bytes signature).")
    flags.DEFINE_string("index", None, "Gallery index folder (prism-tf-index) to serve as "
                        "the search signatures.")
    flags.DEFINE_integer("search_k", 10, "Gallery rows each search answers (at most the "
                         "gallery's).")


def export_run(workdir: str, export_dir: str, version: Optional[int] = None,
               allow_unfinished: bool = False, tflite: bool = False,
               index: Optional[str] = None, search_k: int = 10) -> Path:
    """Exports the latest checkpoint of `workdir` (with the gallery index
    folder `index`: its search signatures); returns the version folder."""
    gallery = GalleryIndex.load(index) if index else None
    run = Run(workdir)
    preprocessing, model = run.restore()
    step, steps = int(model.optimizer.iterations.numpy()), run.config.train.steps
    if step < steps and not allow_unfinished:
        raise ConfigError(
            f"{workdir} is at step {step} of {steps}: not finished. "
            "Finish it (run the same train command again) or pass --allow_unfinished.")
    return export_saved_model(model.encoder, export_dir, preprocessing, version, tflite,
                              gallery, search_k)


def main(argv):
    del argv
    if not FLAGS.workdir or not FLAGS.export_dir:
        raise app.UsageError("--workdir and --export_dir are required")
    if FLAGS["search_k"].present and not FLAGS.index:
        raise app.UsageError("--search_k is for the search signatures: it needs --index")
    with cli.one_line_errors():
        path = export_run(FLAGS.workdir, FLAGS.export_dir, FLAGS.version,
                          FLAGS.allow_unfinished, FLAGS.tflite, FLAGS.index,
                          FLAGS.search_k)
    print(f"exported {path}")


def run() -> None:
    """The `prism-tf-export` command."""
    cli.run(main, _define_flags)


if __name__ == "__main__":
    run()
