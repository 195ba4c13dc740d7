"""Shared test set-up: quiet TensorFlow, CPU only (split in two logical devices), seeded."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import keras  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPUs, so that MirroredStrategy has two replicas here
# (tests/test_distributed.py); everything else runs on the first, as before.
# Set before any test touches TensorFlow's devices.
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)


@pytest.fixture(autouse=True)
def seeded():
    keras.utils.set_random_seed(1234)
