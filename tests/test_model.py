import keras
import numpy as np
import pytest
import tensorflow as tf

from prism_tf import MemoryBank, PrismModel, PrismSelector, losses
from prism_tf.model import InvalidBatchError
from prism_tf.selector import NO_GUARDS
from tests import numpy_reference as ref

DIM, CLASSES = 8, 6


def _encoder(input_dim=12):
    return keras.Sequential([keras.Input((input_dim,)), keras.layers.Dense(DIM)])


def _model(memory_size=64, noise_rate=0.5, **kwargs):
    """The authors' selector (no guards; test_selector.py tests those), so
    that these small models' steps select from their first memory rows."""
    return PrismModel(_encoder(), MemoryBank(memory_size, DIM, CLASSES),
                      PrismSelector(noise_rate, window_size=4, **NO_GUARDS), **kwargs)


def _noisy_clusters(n=2048, classes=10, dim=12, rate=0.5, seed=0):
    """Gaussian clusters with symmetric label noise: (x, noisy labels, is_noisy)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) * 2.0
    truth = rng.integers(0, classes, n)
    x = (centres[truth] + rng.normal(size=(n, dim))).astype("float32")
    is_noisy = rng.random(n) < rate
    labels = np.where(is_noisy, (truth + rng.integers(1, classes, n)) % classes, truth)
    return x, labels.astype("int32"), is_noisy


def _dataset(x, labels, is_noisy=None, batch=32):
    """(x, labels) batches, or (x, {"labels", "is_noisy"}) with the ground truth."""
    y = labels if is_noisy is None else {"labels": labels, "is_noisy": is_noisy}
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch, drop_remainder=True)


def _fit(model, data, **kwargs):
    """model.fit's history as floats (some Keras 3 versions keep tensors there)."""
    history = model.fit(data, **kwargs).history
    return {name: [float(v) for v in values] for name, values in history.items()}


def _bank_state(model):
    bank = model.memory_bank
    return [v.numpy().copy() for v in (bank.embeddings, bank.labels, bank.position,
                                        bank.class_sums, bank.class_counts)]


@pytest.mark.parametrize("normalize, dropped_as_negatives", [(True, True), (False, False)])
def test_one_step_follows_prism_order_exactly(normalize, dropped_as_negatives):
    rng = np.random.default_rng(0)
    # Random memory rows (the guards would keep every sample): the authors'
    # step (without dropped_as_negatives).
    model = _model(memory_size=24, normalize_memory_loss=normalize,
                   dropped_as_negatives=dropped_as_negatives)
    model.compile(optimizer=keras.optimizers.SGD(0.0))  # weights stay, loss is checkable
    memory = rng.normal(size=(20, DIM)).astype("float32")
    memory /= np.linalg.norm(memory, axis=1, keepdims=True)
    memory_labels = rng.integers(0, CLASSES, 20)
    model.memory_bank.enqueue(memory, memory_labels)
    buffer = ref.RingBuffer(24, DIM, CLASSES)
    buffer.enqueue(memory, memory_labels)

    x = rng.normal(size=(16, 12)).astype("float32")
    labels = rng.integers(0, CLASSES, 16)
    z = model.predict(x, verbose=0)
    keep, threshold = ref.SmoothTopR(0.5, 4).select(ref.clean_probability(z, labels, buffer))
    batch_loss = (ref.memory_contrastive(labels, z, kept=keep) if dropped_as_negatives
                  else ref.memory_contrastive(labels[keep], z[keep]))
    valid = buffer.labels >= 0
    memory_loss = ref.memory_contrastive(
        labels[keep], z[keep], buffer.embeddings[valid], buffer.labels[valid]) * keep.sum() / 16
    if normalize:   # as if the 20 memory rows were one batch of 16
        memory_loss *= 16 / 20

    logs = model.train_on_batch(x, labels, return_dict=True)
    assert logs["kept_fraction"] == pytest.approx(keep.mean())
    assert logs["threshold"] == pytest.approx(threshold, rel=1e-5)
    assert logs["batch_loss"] == pytest.approx(batch_loss, rel=1e-4)
    assert logs["memory_loss"] == pytest.approx(memory_loss, rel=1e-4)
    assert logs["loss"] == pytest.approx(batch_loss + memory_loss, rel=1e-4)
    buffer.enqueue(z, labels, keep)  # only the kept rows, after the step
    np.testing.assert_array_equal(model.memory_bank.labels.numpy(), buffer.labels)
    np.testing.assert_allclose(model.memory_bank.embeddings.numpy(), buffer.embeddings, atol=1e-5)


def test_fifty_percent_symmetric_noise_is_mostly_removed():
    x, labels, is_noisy = _noisy_clusters(n=2048)
    model = PrismModel(_encoder(), MemoryBank(512, DIM, 10), PrismSelector(0.5, window_size=10))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    data = _dataset(x, labels, is_noisy, batch=64).repeat()
    history = _fit(model, data, steps_per_epoch=30, epochs=2, verbose=0)
    assert history["kept_purity"][-1] > 0.8, history
    assert history["noise_recall"][-1] > 0.8, history
    assert history["memory_fill"][-1] == 1.0


def test_xla_and_plain_graph_train_identically():
    x, labels, _ = _noisy_clusters(n=320)
    results = []
    for jit_compile in (False, True):
        keras.utils.set_random_seed(7)
        model = _model(memory_size=96, batch_loss=losses.TripletSemiHardLoss())
        model.compile(optimizer=keras.optimizers.SGD(0.05), jit_compile=jit_compile)
        logs = _fit(model, _dataset(x, labels % CLASSES), epochs=1, verbose=0)
        results.append((logs, _bank_state(model), model.get_weights()))
    (logs_a, bank_a, weights_a), (logs_b, bank_b, weights_b) = results
    for key in logs_a:
        assert logs_a[key][0] == pytest.approx(logs_b[key][0], rel=1e-4, abs=1e-6), key
    for a, b in zip(bank_a + weights_a, bank_b + weights_b):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_memory_is_off_before_memory_start_step():
    x, labels, _ = _noisy_clusters(n=256)
    model = _model(memory_start_step=4)
    model.compile(optimizer="adam")
    data = _dataset(x, labels % CLASSES)
    logs = _fit(model, data.take(4), epochs=1, verbose=0)
    assert logs["kept_fraction"] == [1.0] and logs["memory_loss"] == [0.0]
    assert logs["memory_fill"] == [0.0]
    logs = _fit(model, data.skip(4), epochs=1, verbose=0)
    assert logs["kept_fraction"][0] < 1.0 and logs["memory_fill"][0] > 0.0


def test_selection_off_is_the_plain_memory_baseline():
    x, labels, is_noisy = _noisy_clusters(n=256)
    model = PrismModel(_encoder(), MemoryBank(64, DIM, 10))   # no selector: XBM
    model.compile(optimizer="adam")
    logs = _fit(model, _dataset(x, labels, is_noisy), epochs=1, verbose=0)
    assert logs["kept_fraction"] == [1.0] and logs["noise_recall"] == [0.0]
    assert logs["memory_fill"] == [1.0] and "threshold" not in logs
    assert logs["kept_purity"][0] == pytest.approx(1 - is_noisy.mean(), abs=0.05)


def test_evaluate_and_predict_never_touch_the_memory():
    x, labels, _ = _noisy_clusters(n=128)
    model = _model()
    model.compile(optimizer="adam")
    model.fit(_dataset(x, labels % CLASSES), epochs=1, verbose=0)
    before = _bank_state(model) + [model.selector.window.numpy()]
    result = model.evaluate(_dataset(x, labels % CLASSES), verbose=0, return_dict=True)
    embeddings = model.predict(x, verbose=0)
    assert np.isfinite(result["loss"])
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)
    for a, b in zip(before, _bank_state(model) + [model.selector.window.numpy()]):
        np.testing.assert_array_equal(a, b)


def test_any_callable_batch_loss_gets_the_kept_rows():
    seen = []

    def batch_loss(labels, embeddings):
        seen.append(int(tf.shape(labels)[0]))
        return tf.reduce_mean(tf.reduce_sum(embeddings, axis=1))

    x, labels, _ = _noisy_clusters(n=64)
    model = _model(batch_loss=batch_loss)
    model.compile(optimizer="adam", run_eagerly=True)
    model.fit(_dataset(x, labels % CLASSES), epochs=1, verbose=0)
    assert seen == [16, 16]  # half of each batch of 32


def test_keras_file_round_trip_keeps_memory_window_and_optimizer(tmp_path):
    x, labels, _ = _noisy_clusters(n=256)
    data = _dataset(x, labels % CLASSES)
    model = _model(memory_weight=0.5, memory_start_step=2, normalize_memory_loss=False)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(data, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert isinstance(loaded, PrismModel)
    assert (loaded.memory_weight, loaded.memory_start_step) == (0.5, 2)
    assert not loaded.normalize_memory_loss
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    for a, b in zip(_bank_state(model), _bank_state(loaded)):
        np.testing.assert_array_equal(a, b)
    assert loaded.selector.window.numpy().tolist() == model.selector.window.numpy().tolist()
    assert int(loaded.optimizer.iterations.numpy()) == 8
    # Both continue the same way from the same state.
    next_a = _fit(model, data.take(2), epochs=1, verbose=0)["loss"]
    next_b = _fit(loaded, data.take(2), epochs=1, verbose=0)["loss"]
    assert next_a == pytest.approx(next_b, rel=1e-5)


def test_checkpoint_holds_encoder_memory_and_window(tmp_path):
    x, labels, _ = _noisy_clusters(n=128)
    model = _model()
    model.compile(optimizer="adam")
    model.fit(_dataset(x, labels % CLASSES), epochs=1, verbose=0)
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    fresh = _model()
    tf.train.Checkpoint(model=fresh).restore(path).expect_partial()
    for a, b in zip(_bank_state(model), _bank_state(fresh)):
        np.testing.assert_array_equal(a, b)
    assert int(fresh.selector.window_count.numpy()) == int(model.selector.window_count.numpy())
    np.testing.assert_allclose(fresh.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_bad_construction_and_data_are_explained():
    with pytest.raises(ValueError, match="memory_start_step must be"):
        _model(memory_start_step=-1)
    model = _model()
    model.compile(optimizer="adam")
    x = np.zeros((8, 12), "float32")
    with pytest.raises(ValueError, match=r"must yield \(inputs, y\) or \(inputs, y, sample_weight\)"):
        model.fit(tf.data.Dataset.from_tensor_slices(x).batch(4), epochs=1, verbose=0)


def test_mixed_precision_step_matches_float32_with_a_float32_memory():
    x, labels, _ = _noisy_clusters(n=32)
    updates = {}
    for policy in ("float32", "mixed_float16"):
        keras.mixed_precision.set_global_policy(policy)
        try:
            # Not seed 3: with dropped samples kept as negatives, one discrete
            # choice of its step (a pair at MCL's margin, or a ranking) sits
            # within float16 rounding on Keras 2, and the updates differ by
            # 0.0025 there; at seeds 0-2 and 4-5 by 4e-5 to 7e-5.
            keras.utils.set_random_seed(0)
            model = _model()
            model.compile(optimizer=keras.optimizers.SGD(0.1))
            before = model.encoder.get_weights()[0]
            model.train_on_batch(x, labels % CLASSES)
            updates[policy] = model.encoder.get_weights()[0] - before
        finally:
            keras.mixed_precision.set_global_policy("float32")
        assert model.memory_bank.embeddings.dtype == tf.float32
        assert float(model.memory_bank.fill_fraction()) > 0
    # Without loss scaling the float16 gradients would underflow or shrink.
    np.testing.assert_allclose(updates["mixed_float16"], updates["float32"], rtol=0.05, atol=1e-3)


def test_memory_weight_zero_scores_without_a_memory_loss():
    x, labels, _ = _noisy_clusters(n=128)
    model = _model(memory_weight=0.0)
    model.compile(optimizer="adam")
    logs = _fit(model, _dataset(x, labels % CLASSES), epochs=1, verbose=0)
    assert "memory_loss" not in logs and logs["loss"] == logs["batch_loss"]
    assert logs["kept_fraction"][0] < 1.0 and logs["memory_fill"][0] > 0


def _all_state(model):
    """Encoder, memory, selector window and optimizer values (Keras 2 also
    lists the loss trackers among the weights: they are left out)."""
    return [v.numpy().copy() for v in model.encoder.weights + model.memory_bank.weights
            + model.selector.weights + list(model.optimizer.variables)]


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("case", ["nan_input", "inf_input", "label_too_large",
                                  "negative_label", "batch_larger_than_memory"])
def test_a_bad_batch_stops_fit_and_changes_nothing(jit_compile, case):
    x, labels, _ = _noisy_clusters(n=96, classes=CLASSES)
    model = _model(memory_size=32, memory_weight=1.0)
    model.compile(optimizer="adam", jit_compile=jit_compile)
    # Unknown batch size, so the check cannot happen at trace time.
    good = tf.data.Dataset.from_tensor_slices((x, labels)).batch(16)
    _fit(model, good.take(2), epochs=1, verbose=0)
    before = _all_state(model)
    batch, match = 16, r"training step 3 refused: "
    if case == "nan_input":
        x[0, 3] = np.nan
        match += "non-finite embeddings, loss or gradients"
    elif case == "inf_input":
        x[5] = np.inf
        match += "non-finite embeddings, loss or gradients"
    elif case == "label_too_large":
        labels[7] = CLASSES
        match += r"labels outside \[0, num_classes\)"
    elif case == "negative_label":
        labels[0] = -1
        match += r"labels outside \[0, num_classes\)"
    else:
        batch = 48
        match += "a batch larger than the memory bank"
    bad = tf.data.Dataset.from_tensor_slices((x, labels)).batch(batch)
    with pytest.raises(InvalidBatchError, match=match):
        model.fit(bad, epochs=1, verbose=0)
    after = _all_state(model)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    # The model trains again on good data once the bad batch is gone.
    _fit(model, good.skip(2), epochs=1, verbose=0)
    assert int(model.optimizer.iterations) == 2 + 4
    assert all(np.isfinite(v.numpy()).all() for v in model.weights)


def test_a_static_batch_larger_than_the_memory_is_refused_when_traced():
    x, labels, _ = _noisy_clusters(n=96, classes=CLASSES)
    model = _model(memory_size=32)
    model.compile(optimizer="adam", jit_compile=True)
    with pytest.raises(ValueError, match="a batch of 48 samples does not fit a memory of 32"):
        model.fit(_dataset(x, labels, batch=48), epochs=1, verbose=0)


def test_masked_out_nan_rows_never_reach_the_memory():
    bank = MemoryBank(8, 2, 3)
    bank.enqueue([[1.0, 0.0], [np.nan, np.inf]], [0, 1], mask=[True, False])
    assert np.isfinite(bank.class_sums.numpy()).all()
    assert bank.class_counts.numpy().tolist() == [1, 0, 0]


def test_compile_loss_is_the_batch_loss():
    x, labels, _ = _noisy_clusters(n=64, classes=CLASSES)
    hard = losses.TripletHardLoss()
    # Memory off and a zero learning rate: each step's batch loss is the
    # loss of the whole batch under fixed weights.
    model = _model(memory_start_step=100)
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss=hard)
    assert model.batch_loss is hard
    history = _fit(model, _dataset(x, labels), epochs=1, verbose=0)
    expected = np.mean([float(hard(labels[i:i + 32], model(x[i:i + 32]))) for i in (0, 32)])
    assert history["batch_loss"][0] == pytest.approx(expected, rel=1e-5)
    assert expected != pytest.approx(float(np.mean(
        [float(losses.MemoryContrastiveLoss()(labels[i:i + 32], model(x[i:i + 32])))
         for i in (0, 32)])), rel=1e-3)
    with pytest.raises(TypeError, match="must be a metric loss instance"):
        _model().compile(optimizer="adam", loss="mse")
    with pytest.raises(ValueError, match="given to the constructor and again"):
        _model(batch_loss=losses.ContrastiveLoss()).compile(optimizer="adam", loss=hard)


def test_sample_weights_scale_the_losses_and_zero_weights_stay_out_of_memory():
    x, labels, _ = _noisy_clusters(n=32, classes=CLASSES)
    weights = np.ones(32, "float32")
    weights[::4] = 0.0
    # No selection (rate 0), an empty memory and a zero learning rate: the one
    # step's batch loss is the weighted loss under the initial weights.
    model = _model(noise_rate=0.0, memory_size=64, memory_weight=1.0)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    z = model(x).numpy()
    data = tf.data.Dataset.from_tensor_slices((x, labels, weights)).batch(32)
    history = _fit(model, data, epochs=1, verbose=0)
    weighted = float(losses.MemoryContrastiveLoss()(labels, z, sample_weight=weights))
    assert history["batch_loss"][0] == pytest.approx(weighted, rel=1e-5)
    assert weighted != pytest.approx(float(losses.MemoryContrastiveLoss()(labels, z)), rel=1e-3)
    bank = model.memory_bank
    assert int(bank.class_counts.numpy().sum()) == 24
    np.testing.assert_allclose(bank.embeddings.numpy()[:24], z[weights > 0], atol=1e-6)
    np.testing.assert_array_equal(bank.labels.numpy()[:24], labels[weights > 0])


def test_a_boolean_third_element_is_refused_not_read_as_weights():
    x, labels, is_noisy = _noisy_clusters(n=32, classes=CLASSES)
    model = _model()
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match="the third element is boolean; ground-truth noise"):
        model.fit(tf.data.Dataset.from_tensor_slices((x, labels, is_noisy)).batch(16),
                  epochs=1, verbose=0)
    with pytest.raises(ValueError, match="takes 'labels' and optionally 'is_noisy'"):
        model.fit(tf.data.Dataset.from_tensor_slices((x, {"label": labels})).batch(16),
                  epochs=1, verbose=0)


def test_train_on_batch_raises_on_a_refused_step_and_trains_again_after():
    x, labels, _ = _noisy_clusters(n=32, classes=CLASSES)
    model = _model()
    model.compile(optimizer="adam")
    model.train_on_batch(x[:16], labels[:16])
    bad = labels[16:].copy()
    bad[0] = CLASSES
    with pytest.raises(InvalidBatchError, match="training step 2 refused: labels outside"):
        model.train_on_batch(x[16:], bad)
    model.train_on_batch(x[16:], labels[16:])
    assert int(model.optimizer.iterations) == 2


@pytest.mark.parametrize("jit_compile", [False, True])
def test_vmf_scoring_trains_and_selects(jit_compile):
    x, labels, is_noisy = _noisy_clusters(n=512)
    # No guards, as the step's other mechanics tests: a 4-batch window's
    # separability is too rough a reading to decide whether this selects.
    model = PrismModel(_encoder(), MemoryBank(128, DIM, CLASSES),
                       PrismSelector(0.5, window_size=4, scoring="vmf", **NO_GUARDS))
    model.compile(optimizer="adam", jit_compile=jit_compile)
    logs = _fit(model, _dataset(x, labels % CLASSES, is_noisy), epochs=2, verbose=0)
    assert all(np.isfinite(v).all() for v in logs.values())
    # Half the labels are wrong: the kept half is mostly right ones.
    assert 0.4 < logs["kept_fraction"][-1] < 0.7 and logs["kept_purity"][-1] > 0.8
