"""The TFA-named losses against TensorFlow Addons itself (legacy stack only).

TFA needs TF <= 2.15, so this runs under `make test-legacy`; on the primary
stack it is skipped.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from prism_tf import MemoryBank, PrismModel, PrismSelector, losses
from prism_tf.selector import NO_GUARDS

tfa = pytest.importorskip("tensorflow_addons")

LABELS = np.array([0, 1, 0, 2, 1, 0, 2, 3, 1, 0, 3, 2])


def _embeddings(seed):
    x = np.random.default_rng(seed).normal(size=(len(LABELS), 6))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype("float32")


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("ours,theirs", [
    (losses.TripletSemiHardLoss(), tfa.losses.TripletSemiHardLoss()),
    (losses.TripletSemiHardLoss(0.2, distance="angular"),
     tfa.losses.TripletSemiHardLoss(0.2, distance_metric="angular")),
    (losses.TripletHardLoss(), tfa.losses.TripletHardLoss()),
    (losses.TripletHardLoss(soft=True, distance="squared-L2"),
     tfa.losses.TripletHardLoss(soft=True, distance_metric="squared-L2")),
    (losses.LiftedStructLoss(), tfa.losses.LiftedStructLoss()),
], ids=["semihard", "semihard_angular", "hard", "hard_soft_squared", "lifted"])
def test_same_value_as_tfa(ours, theirs, seed):
    x = _embeddings(seed)
    assert float(ours(LABELS, x)) == pytest.approx(float(theirs(LABELS, x)), rel=1e-4, abs=1e-6)


def test_contrastive_equals_tfa_over_all_pairs():
    x = _embeddings(2)
    i, j = np.where(~np.eye(len(LABELS), dtype=bool))
    distances = np.linalg.norm(x[i] - x[j], axis=1)
    same = (LABELS[i] == LABELS[j]).astype("float32")
    expected = float(tf.reduce_mean(tfa.losses.contrastive_loss(same, distances, margin=1.0)))
    assert float(losses.ContrastiveLoss()(LABELS, x)) == pytest.approx(expected, rel=1e-5)


def test_a_tfa_loss_object_plugs_into_prism_model():
    encoder = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
    # No guards: random points give the memory nothing to rank by, so
    # whether the guard opened would hang on a window's chance reading.
    model = PrismModel(encoder, MemoryBank(48, 4, 4), PrismSelector(0.25, **NO_GUARDS),
                       batch_loss=tfa.losses.TripletSemiHardLoss())
    model.compile(optimizer="adam")
    data = tf.data.Dataset.from_tensor_slices((np.tile(_embeddings(3), (4, 1)),
                                               np.tile(LABELS, 4))).batch(12)
    logs = model.fit(data, epochs=1, verbose=0).history
    assert np.isfinite(logs["batch_loss"][0]) and 0.5 <= logs["kept_fraction"][0] < 1.0
