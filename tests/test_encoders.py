import keras
import numpy as np
import pytest

from prism_tf import compat
from prism_tf.encoders import build_encoder


def _values(model):
    return [v.numpy() for v in model.variables]


def test_a_small_cnn_starts_from_its_saved_weights_file(tmp_path):
    path = str(tmp_path / "small.weights.h5")
    saved = build_encoder("small_cnn", (16, 16, 3), 8)
    saved.save_weights(path)
    for a, b in zip(_values(build_encoder("small_cnn", (16, 16, 3), 8, path)), _values(saved)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"encoder weights '.*small.weights.h5' do not fit "
                                         r"encoder 'small_cnn'") as refused:
        build_encoder("small_cnn", (16, 16, 3), 4, path)
    # The reason, without the weight matrix Keras prints after it.
    assert len(str(refused.value)) < 600 and "\n" not in str(refused.value)


def _save_as_keras_applications_file(model, path):
    """Writes the legacy HDF5 weights format of Keras's downloaded files."""
    if compat.KERAS_3:
        import h5py
        from keras.src.legacy.saving import legacy_h5_format
        with h5py.File(path, "w") as file:
            legacy_h5_format.save_weights_to_hdf5_group(file, model)
    else:
        model.save_weights(path)


def test_a_backbone_starts_from_a_keras_applications_notop_file(tmp_path):
    # What Keras downloads for weights="imagenet" is such a file; a user with
    # the network saves it once, or gives the one in ~/.keras/models.
    backbone = keras.applications.MobileNetV3Small(
        include_top=False, weights=None, input_shape=(32, 32, 3), pooling="max")
    path = str(tmp_path / "mobilenet_v3_small_notop.h5")
    _save_as_keras_applications_file(backbone, path)
    encoder = build_encoder("MobileNetV3Small", (32, 32, 3), 8, path)
    for a, b in zip(_values(encoder)[:len(backbone.variables)], _values(backbone)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="do not fit"):
        build_encoder("MobileNetV2", (32, 32, 3), 8, path)


def test_missing_or_impossible_weights_are_refused():
    with pytest.raises(FileNotFoundError, match="encoder weights: no file 'none.h5'"):
        build_encoder("small_cnn", (16, 16, 3), 8, "none.h5")
    with pytest.raises(ValueError, match="has no ImageNet weights"):
        build_encoder("small_cnn", (16, 16, 3), 8, "imagenet")
