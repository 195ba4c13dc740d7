import keras
import numpy as np
import pytest
import tensorflow as tf

from prism_tf import losses
from tests import numpy_reference as ref

LABELS = np.array([0, 1, 0, 2, 1, 0, 2, 3, 1, 0])


def _embeddings(seed=0, n=len(LABELS), dim=5):
    x = np.random.default_rng(seed).normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype("float32")


# (loss object, NumPy formula) pairs; margins chosen so every term is active.
CASES = {
    "mcl": (losses.MemoryContrastiveLoss(margin=0.1),
            lambda y, x, kept=None: ref.memory_contrastive(y, x, margin=0.1, kept=kept)),
    "contrastive": (losses.ContrastiveLoss(margin=1.2), lambda y, x: ref.contrastive(y, x, margin=1.2)),
    "semihard_l2": (losses.TripletSemiHardLoss(),
                    lambda y, x, kept=None: ref.triplet_semihard(y, x, kept=kept)),
    "semihard_angular": (losses.TripletSemiHardLoss(margin=0.3, distance="angular"),
                         lambda y, x, kept=None: ref.triplet_semihard(y, x, 0.3, "angular",
                                                                      kept=kept)),
    "hard_l2": (losses.TripletHardLoss(), lambda y, x: ref.triplet_hard(y, x)),
    "hard_squared_soft": (losses.TripletHardLoss(soft=True, distance="squared-L2"),
                          lambda y, x: ref.triplet_hard(y, x, soft=True, metric="squared-L2")),
    "hard_angular": (losses.TripletHardLoss(margin=0.2, distance="angular"),
                     lambda y, x: ref.triplet_hard(y, x, 0.2, metric="angular")),
    "lifted": (losses.LiftedStructLoss(), lambda y, x: ref.lifted_struct(y, x)),
    "multi_similarity": (losses.MultiSimilarityLoss(), lambda y, x: ref.multi_similarity(y, x)),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_matches_numpy_formula(name, seed):
    loss, formula = CASES[name]
    x = _embeddings(seed)
    assert float(loss(LABELS, x)) == pytest.approx(formula(LABELS, x), rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("name", sorted(CASES))
def test_zero_one_weights_equal_the_loss_of_the_kept_rows(name):
    loss, _ = CASES[name]
    x = _embeddings(3)
    keep = np.array([1, 1, 0, 1, 1, 1, 1, 0, 0, 1], bool)
    masked = loss(LABELS, x, sample_weight=keep.astype("float32"))
    gathered = loss(LABELS[keep], x[keep])
    assert float(masked) == pytest.approx(float(gathered), rel=1e-5, abs=1e-6)


# The CASES whose NumPy formula takes `kept` (dropped_as_negatives: kept
# anchors and positives, every negative): the losses PRISM's benchmarks train with.
KEPT_CASES = ["mcl", "semihard_angular", "semihard_l2"]


@pytest.mark.parametrize("name", KEPT_CASES)
def test_dropped_rows_kept_as_negatives_match_numpy(name):
    loss, formula = CASES[name]
    x = _embeddings(5)
    keep = np.array([1, 1, 0, 1, 1, 1, 1, 0, 0, 1], bool)
    value = float(loss(LABELS, x, sample_weight=keep.astype("float32"),
                       negative_sample_weight=np.ones(len(LABELS), "float32")))
    assert value == pytest.approx(formula(LABELS, x, kept=keep), rel=1e-4, abs=1e-5)
    # Not the loss of the kept rows alone: the dropped rows are negatives here.
    assert value != pytest.approx(formula(LABELS[keep], x[keep]), rel=1e-3)
    with pytest.raises(ValueError, match="a reference set's rows take ref_weight"):
        loss(LABELS, x, ref_embeddings=x, ref_labels=LABELS, negative_sample_weight=keep)


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradients_are_finite_with_duplicate_embeddings(name):
    loss, _ = CASES[name]
    x = tf.Variable(np.repeat(_embeddings(4, n=4), 2, axis=0))
    with tf.GradientTape() as tape:
        value = loss([0, 0, 1, 1, 0, 0, 2, 2], x)
    assert np.isfinite(tape.gradient(value, x).numpy()).all()


@pytest.mark.parametrize("name", sorted(CASES))
def test_loss_is_serializable(name):
    loss, _ = CASES[name]
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(clone) is type(loss) and clone.get_config() == loss.get_config()
    x = _embeddings(5)
    assert float(clone(LABELS, x)) == pytest.approx(float(loss(LABELS, x)))


def test_memory_losses_against_a_reference_set_match_numpy():
    x, memory = _embeddings(6), _embeddings(7, n=30)
    memory_labels = np.random.default_rng(8).integers(0, 4, 30)
    for loss, formula in [
        (losses.MemoryContrastiveLoss(), ref.memory_contrastive),
        (losses.MultiSimilarityLoss(), ref.multi_similarity),
    ]:
        got = loss(LABELS, x, ref_embeddings=memory, ref_labels=memory_labels)
        assert float(got) == pytest.approx(formula(LABELS, x, memory, memory_labels), rel=1e-5)


def test_reference_weight_drops_memory_rows():
    x, memory = _embeddings(6), _embeddings(7, n=30)
    memory_labels = np.random.default_rng(8).integers(-1, 4, 30)  # -1: empty slots
    valid = memory_labels >= 0
    loss = losses.MemoryContrastiveLoss()
    weighted = loss(LABELS, x, ref_embeddings=memory, ref_labels=memory_labels,
                    ref_weight=valid)
    gathered = loss(LABELS, x, ref_embeddings=memory[valid], ref_labels=memory_labels[valid])
    assert float(weighted) == pytest.approx(float(gathered), rel=1e-6)


def test_all_weights_zero_gives_zero_loss():
    assert float(losses.MemoryContrastiveLoss()(LABELS, _embeddings(), sample_weight=np.zeros(10))) == 0.0


def test_triplet_semihard_with_a_reference_set_runs_under_xla():
    loss = losses.TripletSemiHardLoss()
    x, memory = _embeddings(1), _embeddings(2, n=12)
    memory_labels = np.arange(12) % 4
    eager = loss(LABELS, x, ref_embeddings=memory, ref_labels=memory_labels)
    compiled = tf.function(loss.__call__, jit_compile=True)(
        LABELS, x, ref_embeddings=memory, ref_labels=memory_labels)
    assert float(compiled) == pytest.approx(float(eager), rel=1e-5)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="reduction='sum' is not supported"):
        losses.MemoryContrastiveLoss(reduction="sum")
    with pytest.raises(ValueError, match="distance must be one of"):
        losses.TripletHardLoss(distance="cosine")
    with pytest.raises(ValueError, match="ref_embeddings given without ref_labels"):
        losses.MemoryContrastiveLoss()(LABELS, _embeddings(), ref_embeddings=_embeddings())


def test_keras_compile_accepts_the_losses():
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss=losses.TripletSemiHardLoss())
    history = model.fit(_embeddings(), LABELS, batch_size=10, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("name", sorted(CASES))
def test_call_is_the_unweighted_loss(name):
    loss, x = CASES[name][0], _embeddings()
    assert float(loss.call(LABELS, x)) == pytest.approx(float(loss(LABELS, x)), rel=1e-6)


def test_the_config_defaults_are_the_constructors_and_get_builds_every_loss():
    from configs import default

    config = default.get_config()
    for name, loss_class in losses.LOSSES.items():
        assert config.loss[name].to_dict() == losses.defaults(name), name
        loss = losses.get(name, **config.loss[name], num_classes=3, embedding_dim=4)
        assert type(loss) is loss_class
        for argument, value in losses.defaults(name).items():
            assert loss.get_config()[argument] == value, (name, argument)
    with pytest.raises(ValueError, match="unknown loss 'arcface'; registered: "):
        losses.get("arcface")
