r"""Export a trained run's encoder as a SavedModel for TF Serving.

    python -m pipelines.export --workdir=runs/default --export_dir=/models/prism

Writes `EXPORT_DIR/<version>/` (next integer version unless --version),
atomically; see `prism_tf.export` for the two signatures.
"""

from absl import app, flags

from pipelines import experiment
from prism_tf.export import export_saved_model

FLAGS = flags.FLAGS


def _define_flags() -> None:
    # Defined only when run as a program, so tests can import the module.
    flags.DEFINE_string("workdir", None, "Training workdir whose latest checkpoint is exported.")
    flags.DEFINE_string("export_dir", None, "Folder TF Serving watches.")
    flags.DEFINE_integer("version", None, "Version number; default: the next free one.")


def main(argv):
    del argv
    if not FLAGS.workdir or not FLAGS.export_dir:
        raise app.UsageError("--workdir and --export_dir are required")
    try:
        config, model = experiment.restore_run(FLAGS.workdir)
        preprocessing = experiment.preprocessing(config)
        channels = model.encoder.input_shape[-1]
        path = export_saved_model(model.encoder, FLAGS.export_dir, preprocessing, channels,
                                  FLAGS.version)
    except (experiment.ConfigError, FileExistsError) as error:
        raise app.UsageError(str(error))
    print(f"exported {path}")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
