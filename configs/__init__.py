"""Experiment configs: one file per experiment, read with absl config_flags."""
