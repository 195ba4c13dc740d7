import keras
import numpy as np
import pytest
import tensorflow as tf

from prism_tf import MemoryBank, PrismModel, PrismSelector
from prism_tf import compat, losses
from prism_tf.model import InvalidBatchError
from prism_tf.proxy_losses import PROXY_LOSSES, ProxyAnchorLoss, SoftTripleLoss
from prism_tf.selector import NO_GUARDS
from tests import numpy_reference as ref

DIM, CLASSES = 8, 5


def _batch(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, CLASSES, n).astype("int32"),
            rng.normal(size=(n, DIM)).astype("float32"))


def _losses():
    return [SoftTripleLoss(CLASSES, DIM, centers_per_class=3),
            ProxyAnchorLoss(CLASSES, DIM)]


def _reference(loss, labels, embeddings):
    proxies = loss.proxies.numpy()
    if isinstance(loss, SoftTripleLoss):
        return ref.soft_triple(labels, embeddings, proxies, loss.proxies_per_class,
                               loss.la, loss.gamma, loss.margin)
    return ref.proxy_anchor(labels, embeddings, proxies, loss.alpha, loss.margin)


@pytest.mark.parametrize("loss", _losses(), ids=lambda loss: loss.name)
def test_loss_matches_numpy_reference(loss):
    labels, z = _batch()
    assert float(loss(labels, z)) == pytest.approx(_reference(loss, labels, z), rel=1e-4)


@pytest.mark.parametrize("loss", _losses(), ids=lambda loss: loss.name)
@pytest.mark.parametrize("jit_compile", [False, True])
def test_a_zero_one_weight_equals_the_loss_of_the_kept_rows(loss, jit_compile):
    labels, z = _batch(16, seed=1)
    keep = np.random.default_rng(2).random(16) < 0.6
    weighted = tf.function(lambda y, x, w: loss(y, x, sample_weight=w), jit_compile=jit_compile)
    value = float(weighted(labels, z, keep.astype("float32")))
    assert value == pytest.approx(_reference(loss, labels[keep], z[keep]), rel=1e-4)


@pytest.mark.parametrize("loss", _losses(), ids=lambda loss: loss.name)
def test_gradients_reach_the_proxies_and_embeddings(loss):
    labels, z = _batch()
    z = tf.constant(z)
    with tf.GradientTape() as tape:
        tape.watch(z)
        value = loss(labels, z)
    grad_z, grad_proxies = tape.gradient(value, [z, loss.proxies])
    assert np.isfinite(grad_z.numpy()).all() and np.abs(grad_z.numpy()).sum() > 0
    assert np.isfinite(grad_proxies.numpy()).all() and np.abs(grad_proxies.numpy()).sum() > 0


def test_class_similarity_is_the_cosine_to_the_class_proxies():
    labels, z = _batch()
    anchor = ProxyAnchorLoss(CLASSES, DIM)
    expected = ref._unit(z) @ ref._unit(anchor.proxies.numpy()).T
    np.testing.assert_allclose(anchor.class_similarity(z).numpy(), expected, atol=1e-5)
    # SoftTriple's class similarity lies between its centres' min and max.
    soft = SoftTripleLoss(CLASSES, DIM, centers_per_class=3)
    per_centre = (ref._unit(z) @ ref._unit(soft.proxies.numpy()).T).reshape(-1, CLASSES, 3)
    relaxed = soft.class_similarity(z).numpy()
    assert (relaxed <= per_centre.max(2) + 1e-6).all()
    assert (relaxed >= per_centre.min(2) - 1e-6).all()


@pytest.mark.parametrize("name", sorted(PROXY_LOSSES))
def test_config_round_trip(name):
    loss = PROXY_LOSSES[name](CLASSES, DIM)
    again = compat.deserialize(compat.serialize(loss))
    assert type(again) is type(loss) and again.get_config() == loss.get_config()


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        ProxyAnchorLoss(0, DIM)
    with pytest.raises(ValueError, match="proxies_per_class"):
        SoftTripleLoss(CLASSES, DIM, centers_per_class=0)
    labels, z = _batch()
    with pytest.raises(tf.errors.InvalidArgumentError, match="labels must be integers"):
        ProxyAnchorLoss(CLASSES, DIM)(np.full(12, CLASSES), z)
    with pytest.raises(ValueError, match="ProxyAnchorLoss"):
        ProxyAnchorLoss(CLASSES, DIM)(labels, z[:, :3])


def test_proxy_scoring_is_the_softmax_over_the_given_similarities():
    bank = MemoryBank(16, DIM, CLASSES)   # empty: proxies score every class anyway
    labels, z = _batch()
    loss = ProxyAnchorLoss(CLASSES, DIM)
    similarity = loss.class_similarity(z)
    selector = PrismSelector(0.5, scoring="proxies", temperature=0.5)
    with pytest.raises(ValueError, match="no proxy loss attached"):
        selector.scores(z, labels, bank)
    selector.attach(loss)
    p_clean, rank = selector.scores(z, labels, bank)
    logits = similarity.numpy() / 0.5
    softmax = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(p_clean.numpy(), softmax[np.arange(12), labels], atol=1e-5)
    own = logits[np.arange(12), labels][:, None]
    expected_rank = ((logits > own).sum(1)) / (CLASSES - 1)
    np.testing.assert_allclose(rank.numpy(), expected_rank, atol=1e-6)
    with pytest.raises(ValueError, match="MemoryContrastiveLoss has none"):
        selector.attach(losses.MemoryContrastiveLoss())


def _clusters(n=512, rate=0.5, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLASSES, 12)) * 2.0
    truth = rng.integers(0, CLASSES, n)
    x = (centres[truth] + rng.normal(size=(n, 12))).astype("float32")
    is_noisy = rng.random(n) < rate
    labels = np.where(is_noisy, (truth + rng.integers(1, CLASSES, n)) % CLASSES, truth)
    return tf.data.Dataset.from_tensor_slices(
        (x, {"labels": labels.astype("int32"), "is_noisy": is_noisy})).batch(
            32, drop_remainder=True)


def _proxy_model(loss, scoring="proxies"):
    encoder = keras.Sequential([keras.Input((12,)), keras.layers.Dense(DIM)])
    return PrismModel(encoder, MemoryBank(128, DIM, CLASSES),
                      PrismSelector(0.5, window_size=4, scoring=scoring, **NO_GUARDS),
                      batch_loss=loss)


@pytest.mark.parametrize("jit_compile", [False, True])
# The authors' selector (no guards: their tests are in test_selector.py),
# so the test reads how well the proxies rank the labels. Proxy-Anchor's
# proxies follow 50% wrong labels (its log-sum-exp weighs the farthest,
# i.e. wrongly labelled, members most): it is tested at 20%.
@pytest.mark.parametrize("make_loss, rate", [
    (lambda: SoftTripleLoss(CLASSES, DIM, centers_per_class=2), 0.5),
    (lambda: ProxyAnchorLoss(CLASSES, DIM), 0.2)], ids=["soft_triple", "proxy_anchor"])
def test_proxysim_trains_and_keeps_mostly_right_labels(make_loss, rate, jit_compile):
    keras.utils.set_random_seed(0)
    model = _proxy_model(make_loss())
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  proxy_optimizer=keras.optimizers.Adam(1e-1), jit_compile=jit_compile)
    history = model.fit(_clusters(rate=rate), epochs=4, verbose=0).history
    assert all(np.isfinite(np.asarray(v, float)).all() for v in history.values())
    # The selector is told 50%: once the proxies know the classes, the kept
    # half is mostly right labels.
    assert 0.3 < float(history["kept_fraction"][-1]) < 0.7
    assert float(history["kept_purity"][-1]) > 0.75


def test_each_optimizer_updates_only_its_own_variables():
    model = _proxy_model(ProxyAnchorLoss(CLASSES, DIM))
    model.compile(optimizer=keras.optimizers.SGD(0.0),
                  proxy_optimizer=keras.optimizers.SGD(0.5))
    data = _clusters(n=64)
    model.predict(np.zeros((1, 12), "float32"), verbose=0)
    encoder_before = [v.numpy().copy() for v in model.encoder.weights]
    proxies_before = model.batch_loss.proxies.numpy().copy()
    model.fit(data, epochs=1, verbose=0)
    for before, after in zip(encoder_before, model.encoder.weights):
        np.testing.assert_array_equal(before, after.numpy())
    assert np.abs(model.batch_loss.proxies.numpy() - proxies_before).max() > 1e-3
    assert int(model.proxy_optimizer.iterations.numpy()) == 2

    # Without a proxy optimizer the model's trains both.
    model = _proxy_model(ProxyAnchorLoss(CLASSES, DIM))
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    model.predict(np.zeros((1, 12), "float32"), verbose=0)
    proxies_before = model.batch_loss.proxies.numpy().copy()
    model.fit(data, epochs=1, verbose=0)
    assert np.abs(model.batch_loss.proxies.numpy() - proxies_before).max() > 1e-3


def test_keras_file_keeps_proxies_and_the_proxy_optimizer(tmp_path):
    model = _proxy_model(SoftTripleLoss(CLASSES, DIM, centers_per_class=2))
    model.compile(optimizer="adam", proxy_optimizer=keras.optimizers.Adam(0.05))
    data = _clusters(n=128)
    model.fit(data, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(loaded.batch_loss.proxies.numpy(),
                                  model.batch_loss.proxies.numpy())
    assert loaded.proxy_optimizer.get_config()["learning_rate"] == pytest.approx(0.05)
    assert int(loaded.proxy_optimizer.iterations.numpy()) == 4


def test_proxy_scoring_and_proxy_optimizer_need_a_proxy_loss():
    # Refused when the parts meet: given to the constructor, to compile, or
    # (the default batch loss) at the first step.
    with pytest.raises(ValueError, match="scoring='proxies'.*MemoryContrastiveLoss has none"):
        _proxy_model(losses.MemoryContrastiveLoss())
    model = _proxy_model(None)
    with pytest.raises(ValueError, match="scoring='proxies'.*TripletSemiHardLoss has none"):
        model.compile(optimizer="adam", loss=losses.TripletSemiHardLoss())
    with pytest.raises(ValueError, match="proxy_optimizer trains a proxy loss's proxies"):
        model.compile(optimizer="adam", proxy_optimizer="adam")
    model = _proxy_model(None)
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match="scoring='proxies'.*has none"):
        model.fit(_clusters(n=64), epochs=1, verbose=0)


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("case", ["label_too_large", "nan_input"])
def test_a_bad_batch_changes_neither_proxies_nor_their_optimizer(jit_compile, case):
    model = _proxy_model(SoftTripleLoss(CLASSES, DIM, centers_per_class=2))
    model.compile(optimizer="adam", proxy_optimizer=keras.optimizers.Adam(0.1),
                  jit_compile=jit_compile)
    model.fit(_clusters(n=64), epochs=1, verbose=0)
    def state():
        # Everything a step may write but `failure`, which records the refusal.
        return [v.numpy().copy() for v in
                model.encoder.weights + model.memory_bank.weights + model.selector.weights
                + model.batch_loss.weights + list(model.optimizer.variables)
                + list(model.proxy_optimizer.variables)]

    before = state()
    x, y = next(iter(_clusters(n=32).unbatch().batch(32)))
    x, labels = x.numpy(), y["labels"].numpy()
    if case == "label_too_large":
        labels[3], match = CLASSES, r"labels outside \[0, num_classes\)"
    else:
        x[0, 0], match = np.nan, "non-finite embeddings, loss or gradients"
    with pytest.raises(InvalidBatchError, match=match):
        model.fit(tf.data.Dataset.from_tensor_slices((x, labels)).batch(32), epochs=1,
                  verbose=0)
    after = state()
    assert len(after) == len(before) > 10
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
