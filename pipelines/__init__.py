"""absl-flag pipelines of prism-tf.

Installed, they are `prism_tf.pipelines` and the `prism-tf-*` commands; in
a checkout, `python -m pipelines.NAME` from the repository root.
"""

# First, before any pipeline imports Keras: TensorFlow starts through
# prism_tf, without the CUDA probe's lines where no GPU can be.
import prism_tf  # noqa: F401
