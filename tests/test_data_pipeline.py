import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from prism_tf.data import DataError, image_folder, synthetic
from prism_tf.data.pipeline import (CorruptImageLog, Preprocessing, class_balanced_indices,
                                    drop_undecodable, eval_dataset, sample_dataset,
                                    train_dataset)
from tests import data_helpers

SMALL = Preprocessing(image_size=16, eval_resize=1.0)


@pytest.fixture(scope="module")
def noisy_split():
    return synthetic("train", num_classes=40, images_per_class=6, image_size=16).with_noise(
        "symmetric", 0.5, seed=0)


def _batches(dataset, n):
    """(images, labels, is_noisy) arrays of the first n training batches."""
    return [(images.numpy(), y["labels"].numpy(), y["is_noisy"].numpy())
            for images, y in dataset.take(n)]


def test_every_batch_has_p_classes_with_k_samples(noisy_split):
    for images, labels, is_noisy in _batches(train_dataset(noisy_split, 5, 4, SMALL, seed=1), 6):
        assert images.shape == (20, 16, 16, 3) and images.dtype == np.float32
        groups = labels.reshape(5, 4)
        assert (groups == groups[:, :1]).all() and np.unique(groups[:, 0]).size == 5
        assert labels.dtype == np.int32 and is_noisy.dtype == bool


def test_batches_follow_the_noisy_label_table(noisy_split):
    # The sampler groups by the labels the model sees; the flags are the truth.
    for images, labels, is_noisy in _batches(train_dataset(noisy_split, 5, 4, SMALL, seed=1), 3):
        assert 0 < is_noisy.sum() < is_noisy.size
    samples = list(sample_dataset(noisy_split).take(30).as_numpy_iterator())
    for s in samples:
        assert s["label"] == noisy_split.labels[s["index"]]
        assert s["is_noisy"] == noisy_split.is_noisy[s["index"]]
        np.testing.assert_array_equal(s["image"], noisy_split.pixels[s["index"]])


def test_same_seed_same_batches_and_resume_continues(noisy_split):
    first = _batches(train_dataset(noisy_split, 5, 4, SMALL, seed=7), 5)
    again = _batches(train_dataset(noisy_split, 5, 4, SMALL, seed=7), 5)
    resumed = _batches(train_dataset(noisy_split, 5, 4, SMALL, seed=7, start_step=3), 2)
    other = _batches(train_dataset(noisy_split, 5, 4, SMALL, seed=8), 1)
    for a, b in zip(first, again):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    for a, b in zip(first[3:], resumed):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    assert not np.array_equal(first[0][1], other[0][1])


def test_sampler_needs_p_classes_and_repeats_small_classes():
    with pytest.raises(DataError, match="need 4 classes; the labels have 3"):
        next(class_balanced_indices(np.array([0, 1, 2]), 4, 2, seed=0))
    batch = next(class_balanced_indices(np.array([0, 1, 1, 1, 1]), 2, 3, seed=0))
    assert sorted(batch[:3].tolist() + batch[3:].tolist()).count(0) == 3


def test_files_decode_augment_and_evaluate(tmp_path):
    split = image_folder(str(data_helpers.image_folder(tmp_path, (4, 4, 4))))
    images, labels, _ = _batches(train_dataset(split, 2, 2, Preprocessing(image_size=12), seed=0), 1)[0]
    assert images.shape == (4, 12, 12, 3) and np.isfinite(images).all()
    evaluated = list(eval_dataset(split, 5, Preprocessing(image_size=12)).as_numpy_iterator())
    assert [len(y) for _, y in evaluated] == [5, 5, 2]
    assert np.concatenate([y for _, y in evaluated]).tolist() == split.labels.tolist()


def test_grayscale_pixels_with_matching_normalisation():
    split = synthetic("test", num_classes=4, images_per_class=2, image_size=16)
    gray = dataclasses.replace(split, pixels=split.pixels[..., :1])
    x, _ = next(iter(eval_dataset(gray, 4, Preprocessing(16, mean=(0.5,), std=(0.5,)))))
    assert x.shape == (4, 16, 16, 1) and float(tf.reduce_min(x)) >= -1.0
    with pytest.raises(DataError, match="mean has 3 values for 1-channel images"):
        eval_dataset(gray, 4, Preprocessing(16))


def _folder_with_corrupt_images(tmp_path):
    root = data_helpers.image_folder(tmp_path, (4, 4))
    good = (root / "class_0" / "img_0.jpg").read_bytes()
    (root / "class_0" / "img_1.png").write_bytes(good[: len(good) // 2])  # truncated
    (root / "class_1" / "img_2.jpg").write_bytes(b"<html>not an image</html>")
    return image_folder(str(root))


def test_corrupt_images_are_replaced_counted_and_logged(tmp_path):
    split = _folder_with_corrupt_images(tmp_path)
    log = CorruptImageLog()
    for images, labels, _ in _batches(train_dataset(split, 2, 4, Preprocessing(8), seed=0, log=log), 4):
        # The placeholder is black; after normalisation that is -mean/std everywhere.
        flat = images.reshape(8, -1)
        assert (flat.max(1) > flat.min(1)).all()
    assert log.count >= 2
    assert any(s.endswith("img_1.png") for s in log.sources)
    assert any(s.endswith("img_2.jpg") for s in log.sources)


def test_strict_mode_raises_with_the_path(tmp_path):
    split = _folder_with_corrupt_images(tmp_path)
    with pytest.raises(tf.errors.OpError, match="corrupt or unreadable image: .*img_(1.png|2.jpg)"):
        list(eval_dataset(split, 8, Preprocessing(8), strict=True))


def test_corrupt_evaluation_images_are_left_out_not_embedded(tmp_path):
    split = _folder_with_corrupt_images(tmp_path)
    log = CorruptImageLog()
    labels = np.concatenate([y.numpy() for _, y in eval_dataset(split, 3, SMALL, log=log)])
    assert labels.size == len(split) - 2 and log.count == 2


def test_a_damaged_body_is_found_by_decoding_and_skipped_or_refused(tmp_path):
    root = data_helpers.image_folder(tmp_path / "images", (4, 4))
    damaged = data_helpers.damage_png_body(root / "class_1" / "img_1.png")
    split = image_folder(str(root))
    with pytest.raises(tf.errors.InvalidArgumentError):   # what a run met before
        list(eval_dataset(split, 8, SMALL))
    checked = drop_undecodable(split)
    assert checked.skipped == (str(damaged),) and len(checked) == len(split) - 1
    assert str(damaged) not in checked.paths.tolist()
    assert len(list(eval_dataset(checked, 8, SMALL).unbatch())) == len(split) - 1
    with pytest.raises(DataError, match=r"1 image\(s\) of .* cannot be decoded: .*img_1.png"):
        drop_undecodable(split, strict=True)
    encoded = dataclasses.replace(split, paths=None,
                                  encoded=np.array([open(p, "rb").read() for p in split.paths],
                                                   dtype=object))
    assert len(drop_undecodable(encoded).skipped) == 1
    pixels = synthetic("train", num_classes=2, images_per_class=2, image_size=8)
    assert drop_undecodable(pixels).size_range == (8, 8, 8, 8)
    assert checked.size_range == (20, 24, 20, 24)
