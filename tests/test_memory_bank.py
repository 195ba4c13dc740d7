import numpy as np
import pytest
import tensorflow as tf

from prism_tf import MemoryBank
from tests.numpy_reference import RingBuffer


def _state(bank):
    return [v.numpy().copy() for v in (bank.embeddings, bank.labels, bank.position,
                                        bank.class_sums, bank.class_counts)]


def _assert_matches(bank, buffer):
    np.testing.assert_allclose(bank.embeddings.numpy(), buffer.embeddings, atol=1e-6)
    np.testing.assert_array_equal(bank.labels.numpy(), buffer.labels)
    assert int(bank.position.numpy()) == buffer.position
    centers, counts = bank.class_centers()
    np.testing.assert_array_equal(counts.numpy(), buffer.class_counts())
    np.testing.assert_allclose(centers.numpy(), buffer.class_centers(), atol=1e-5)


@pytest.mark.parametrize("jit_compile", [None, False, True])
def test_random_enqueue_streams_match_a_numpy_ring_buffer(jit_compile):
    rng = np.random.default_rng(0)
    size, dim, classes = 13, 4, 5
    bank = MemoryBank(size, dim, classes)
    buffer = RingBuffer(size, dim, classes)
    enqueue = bank.enqueue
    if jit_compile is not None:
        enqueue = tf.function(bank.enqueue, jit_compile=jit_compile)
    for step in range(40):
        # One row, a few, a whole memory: writes wrap around from shifting
        # positions, with few batch shapes to compile (XLA: one each).
        batch = int(rng.choice([1, 5, size]))
        rows = rng.normal(size=(batch, dim)).astype("float32")
        labels = rng.integers(0, classes, batch)
        mask = rng.random(batch) < 0.6 if step % 3 else None
        enqueue(rows, labels, mask)
        buffer.enqueue(rows, labels, mask)
        _assert_matches(bank, buffer)
    assert 0.0 < float(bank.fill_fraction()) <= 1.0


def test_occupied_marks_the_written_slots():
    bank = MemoryBank(size=4, dim=2, num_classes=3)
    assert bank.occupied().numpy().tolist() == [False] * 4
    bank.enqueue([[1.0, 0.0], [0.0, 1.0]], [2, 0])
    assert bank.occupied().numpy().tolist() == [True, True, False, False]


def test_empty_bank_has_no_centers_and_fill_grows():
    bank = MemoryBank(size=8, dim=2, num_classes=3)
    centers, counts = bank.class_centers()
    assert not centers.numpy().any() and not counts.numpy().any()
    assert float(bank.fill_fraction()) == 0.0
    bank.enqueue(np.eye(2, dtype="float32"), [2, 2], mask=[True, False])
    assert float(bank.fill_fraction()) == pytest.approx(1 / 8)
    assert bank.labels.numpy().tolist() == [2] + [-1] * 7


def test_evicted_class_centre_goes_back_to_zero():
    bank = MemoryBank(size=2, dim=3, num_classes=2)
    bank.enqueue(np.full((2, 3), 0.1, "float32"), [0, 0])
    bank.enqueue(np.ones((2, 3), "float32"), [1, 1])
    centers, counts = bank.class_centers()
    assert counts.numpy().tolist() == [0, 2]
    assert centers.numpy()[0].tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("labels", [[0, 3], [-1, 0]])
def test_label_out_of_range_raises_and_writes_nothing(labels):
    bank = MemoryBank(size=4, dim=2, num_classes=3)
    bank.enqueue(np.ones((1, 2), "float32"), [1])
    before = _state(bank)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"labels must be integers in \[0, 3\)"):
        bank.enqueue(np.ones((2, 2), "float32"), labels)
    with pytest.raises(tf.errors.InvalidArgumentError, match="MemoryBank.enqueue"):
        tf.function(bank.enqueue)(np.ones((2, 2), "float32"), labels)
    for old, new in zip(before, _state(bank)):
        np.testing.assert_array_equal(old, new)


def test_under_xla_bad_labels_are_dropped_not_written():
    bank = MemoryBank(size=4, dim=2, num_classes=3)
    tf.function(bank.enqueue, jit_compile=True)(
        np.ones((3, 2), "float32"), tf.constant([1, 7, 2]))
    assert bank.labels.numpy().tolist() == [1, 2, -1, -1]
    assert bank.class_counts.numpy().tolist() == [0, 1, 1]


def test_wrong_width_or_oversized_batch_raises_and_writes_nothing():
    bank = MemoryBank(size=4, dim=2, num_classes=3)
    before = _state(bank)
    with pytest.raises(ValueError, match=r"embeddings must have shape \[batch, 2\]"):
        bank.enqueue(np.ones((2, 5), "float32"), [0, 1])
    with pytest.raises(ValueError, match="does not fit a memory of 4 rows"):
        bank.enqueue(np.ones((5, 2), "float32"), [0] * 5)
    for old, new in zip(before, _state(bank)):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("arguments", [(0, 2, 3), (4, -1, 3), (4, 2, 2.5)])
def test_bad_sizes_are_rejected(arguments):
    with pytest.raises(ValueError, match="must be a positive integer"):
        MemoryBank(*arguments)


def test_state_is_checkpointed_and_restored(tmp_path):
    bank = MemoryBank(size=5, dim=2, num_classes=3)
    bank.enqueue(np.arange(8, dtype="float32").reshape(4, 2), [0, 1, 2, 1])
    saved = _state(bank)
    path = tf.train.Checkpoint(bank=bank).save(str(tmp_path / "ckpt"))
    restored = MemoryBank(size=5, dim=2, num_classes=3)
    tf.train.Checkpoint(bank=restored).restore(path).assert_consumed()
    for old, new in zip(saved, _state(restored)):
        np.testing.assert_array_equal(old, new)


def test_config_round_trip():
    bank = MemoryBank(size=6, dim=3, num_classes=4, name="memory")
    clone = MemoryBank.from_config(bank.get_config())
    assert (clone.size, clone.dim, clone.num_classes, clone.name) == (6, 3, 4, "memory")
