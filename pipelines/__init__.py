"""absl-flag pipelines of prism-tf."""
