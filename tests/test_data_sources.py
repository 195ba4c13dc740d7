import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from prism_tf.data import (DataError, csv_list, fashion_mnist, image_folder, split_classes,
                           synthetic, tfds_dataset)
from prism_tf.data.synthetic import make_synthetic_images
from tests import data_helpers


def test_synthetic_is_deterministic_and_split_by_class():
    a, b = synthetic("train", seed=4), synthetic("train", seed=4)
    np.testing.assert_array_equal(a.pixels, b.pixels)
    assert not np.array_equal(a.pixels, synthetic("train", seed=5).pixels)
    test = synthetic("test", seed=4)
    assert a.num_classes == test.num_classes == 100 and len(a) == len(test) == 4000
    assert a.pixels.shape[1:] == (32, 32, 3) and a.pixels.dtype == np.uint8
    assert not np.isin(test.pixels[:5].reshape(5, -1).sum(1), a.pixels.reshape(len(a), -1).sum(1)).all()


def _nearest_class_mean_accuracy(images, labels, classes):
    """Every 10th image against the raw-pixel means of its class's others."""
    x = images.reshape(len(images), -1).astype(np.float32) / 255
    train, held_out = np.arange(len(x)) % 10 != 0, np.arange(len(x)) % 10 == 0
    means = np.stack([x[train & (labels == c)].mean(0) for c in range(classes)])
    distances = ((x[held_out, None, :] - means[None]) ** 2).sum(-1)
    return (distances.argmin(1) == labels[held_out]).mean()


def test_synthetic_classes_differ_and_members_vary():
    images, labels = make_synthetic_images(num_classes=100, images_per_class=10, seed=0)
    x = images.reshape(len(images), -1).astype(np.float32) / 255
    # Members of a class are not copies of each other.
    assert np.abs(x[0] - x[1]).mean() > 0.05
    # Classes are learnable: nearest class mean (from other images of the
    # class) on raw pixels is far above the 1% chance level, though pose
    # and position vary.
    assert _nearest_class_mean_accuracy(images, labels, 100) > 0.1


def test_the_pretraining_family_fixes_shape_and_texture_not_colour():
    from prism_tf.data.synthetic import family_size
    # Colour, which raw pixels show best, tells objects classes apart, not
    # pretraining classes (each image draws its own hues): 2.5% is chance.
    objects = make_synthetic_images(40, 20, 16, 0)
    pretraining = make_synthetic_images(40, 20, 16, 0, "pretraining")
    assert _nearest_class_mean_accuracy(*objects, 40) > 0.2
    assert _nearest_class_mean_accuracy(*pretraining, 40) < 0.1
    assert family_size("pretraining") == 200
    with pytest.raises(ValueError, match=r"num_classes must be in \[1, 200\]"):
        make_synthetic_images(201, 2, 16, 0, "pretraining")
    with pytest.raises(ValueError, match="family must be one of"):
        make_synthetic_images(10, 2, 16, 0, "cars")


def test_the_fine_family_is_grey_and_its_classes_differ_by_texture_frequency():
    from prism_tf.data.synthetic import family_size
    images, labels = make_synthetic_images(24, 10, 16, 0, "fine")
    assert images.shape == (240, 16, 16, 1) and family_size("fine") == 320
    # Every class has a patterned texture, and classes share shapes and textures.
    objects = make_synthetic_images(24, 10, 16, 0)
    assert (_nearest_class_mean_accuracy(images, labels, 24)
            < _nearest_class_mean_accuracy(*objects, 24))


def test_the_synthetic_pretraining_source_is_evaluated_where_fine_tuning_ends():
    from prism_tf.data import load_source
    train, test = load_source("synthetic", family="pretraining", seed=1, image_size=16)
    objects_train, objects_test = load_source("synthetic", seed=1, image_size=16)
    assert (train.name, train.num_classes, len(train)) == ("synthetic-pretraining/all", 200,
                                                           8000)
    np.testing.assert_array_equal(test.pixels, objects_test.pixels)
    assert objects_train.num_classes == 100
    with pytest.raises(DataError, match="family must be one of \\('objects', 'pretraining'\\)"):
        load_source("synthetic", family="cars")
    with pytest.raises(DataError, match="does not read name"):
        load_source("synthetic", name="cars")


def test_split_classes_gives_disjoint_halves():
    images, labels = make_synthetic_images(num_classes=10, images_per_class=3)
    from prism_tf.data.sources import _from_labels
    whole = _from_labels("s", labels, pixels=images)
    train, test = split_classes(whole, "train"), split_classes(whole, "test")
    assert train.num_classes == test.num_classes == 5 and len(train) == len(test) == 15
    np.testing.assert_array_equal(test.pixels[0], images[15])
    with pytest.raises(DataError, match="must be 'train' or 'test'"):
        split_classes(whole, "val")


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_fashion_mnist_reads_idx_files(tmp_path, suffix):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 12), ("t10k", 5)):
        data_helpers.write_idx(tmp_path / f"{prefix}-images-idx3-ubyte{suffix}",
                               rng.integers(0, 255, (n, 28, 28)))
        data_helpers.write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte{suffix}", np.arange(n) % 10)
    train, test = fashion_mnist("train", str(tmp_path)), fashion_mnist("test", str(tmp_path))
    assert train.pixels.shape == (12, 28, 28, 1) and len(test) == 5
    assert train.labels.tolist() == (np.arange(12) % 10).tolist() and train.num_classes == 10
    assert train.class_name(0) == "T-shirt/top" and train.class_name(9) == "Ankle boot"


def test_fashion_mnist_errors_name_the_file_or_folders(tmp_path):
    with pytest.raises(DataError, match=f"train-images-idx3-ubyte.*not found.*{tmp_path}"):
        fashion_mnist("train", str(tmp_path))
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"not idx at all")
    with pytest.raises(DataError, match="train-images-idx3-ubyte: not an IDX file"):
        fashion_mnist("train", str(tmp_path))


def _mock_tfds(examples_per_split, label_key="label"):
    """TFDS's own mocking, serving small PNGs with known labels."""
    png = tf.io.encode_png(tf.zeros([6, 6, 3], tf.uint8)).numpy()

    def as_dataset(self, split, **kwargs):
        labels = np.concatenate([examples_per_split[s] for s in split.split("+")])
        return tf.data.Dataset.from_tensor_slices(
            {"image": [png] * labels.size, label_key: labels})

    return tfds.testing.mock_data(as_dataset_fn=as_dataset)


def test_tfds_cars_pools_splits_and_halves_the_classes():
    per_split = {"train": np.arange(196), "test": np.arange(196)[::-1]}
    with _mock_tfds(per_split):
        train = tfds_dataset("cars196", "train")
        test = tfds_dataset("cars196", "test")
    assert train.num_classes == test.num_classes == 98
    assert len(train) == len(test) == 196  # two images per class
    assert train.encoded[0][:4] == b"\x89PNG"
    # The builder's class names follow the labels into each half.
    names = tfds.builder("cars196").info.features["label"].names
    assert train.class_names == tuple(names[:98]) and test.class_names == tuple(names[98:])


def test_tfds_sop_uses_the_official_split_and_class_id():
    per_split = {"train": np.array([0, 0, 1, 2]), "test": np.array([3, 3, 4])}
    with _mock_tfds(per_split, label_key="class_id"):
        test = tfds_dataset("stanford_online_products", "test")
    assert len(test) == 3 and test.num_classes == 2 and test.labels.tolist() == [0, 0, 1]


def test_tfds_bad_names_are_explained():
    with pytest.raises(DataError, match="unknown TFDS dataset name 'no_such_dataset'"):
        tfds_dataset("no_such_dataset", "train")
    with _mock_tfds({"train": np.arange(4), "test": np.arange(4)}):
        with pytest.raises(DataError, match="no feature 'photo'"):
            tfds_dataset("cars196", "train", image_key="photo")


def test_image_folder_reads_classes_in_sorted_order(tmp_path):
    split = image_folder(str(data_helpers.image_folder(tmp_path)))
    assert split.labels.tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 2] and split.num_classes == 3
    assert split.paths[3].endswith("class_1/img_0.jpg")
    assert split.class_names == ("class_0", "class_1", "class_2")


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="image folder not found"):
        image_folder(str(tmp_path / "missing"))
    data_helpers.image_folder(tmp_path)
    (tmp_path / "class_9").mkdir()
    with pytest.raises(DataError, match="class_9: empty class"):
        image_folder(str(tmp_path))


def _write_list(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def test_csv_list_with_clean_list_gives_ground_truth(tmp_path):
    data_helpers.image_folder(tmp_path / "images")
    lines = ["path,label", "class_0/img_0.jpg,7", "class_0/img_1.png,7",
             "class_1/img_0.jpg,3", "class_2/img_0.jpg,12"]
    split = csv_list(_write_list(tmp_path / "noisy.csv", lines), str(tmp_path / "images"),
                     clean_list=_write_list(tmp_path / "clean.csv", [lines[1], lines[3]]))
    assert split.labels.tolist() == [1, 1, 0, 2] and split.num_classes == 3
    assert split.is_noisy.tolist() == [False, True, False, True]
    # Each re-indexed label is named as the list writes it, in a subset too.
    assert split.class_names == ("3", "7", "12") and split.class_name(2) == "12"
    assert split_classes(split, "test").class_names == ("7", "12")
    # No injected noise keeps the ground truth, and the report counts it.
    as_given = split.with_noise("none", 0.0, seed=0)
    assert as_given.is_noisy.tolist() == [False, True, False, True]
    assert as_given.noise.num_noisy == 2 and as_given.noise.realized_rate == 0.5
    assert as_given.noise.requested_rate == 0.0


@pytest.mark.parametrize("line,match", [
    ("class_0/img_0.jpg,cat", r"noisy.csv:2: label must be a non-negative integer; got 'cat'"),
    ("class_0/img_0.jpg,-3", r"noisy.csv:2: label must be a non-negative integer; got -3"),
    ("class_0/img_0.jpg", r"noisy.csv:2: expected 'path,label'"),
    ("class_0/missing.jpg,1", r"noisy.csv:2: image file not found: .*missing.jpg"),
])
def test_csv_list_errors_name_file_and_line(tmp_path, line, match):
    data_helpers.image_folder(tmp_path / "images")
    path = _write_list(tmp_path / "noisy.csv", ["class_1/img_0.jpg,0", line])
    with pytest.raises(DataError, match=match):
        csv_list(path, str(tmp_path / "images"))


def test_a_csv_list_saved_with_a_byte_order_mark_is_read(tmp_path):
    data_helpers.image_folder(tmp_path / "images")
    (tmp_path / "bom.csv").write_text("path,label\nclass_1/img_0.jpg,3\n", encoding="utf-8-sig")
    split = csv_list(str(tmp_path / "bom.csv"), str(tmp_path / "images"))
    assert len(split) == 1 and split.paths[0].endswith("class_1/img_0.jpg")


def test_csv_list_missing_list_is_explained(tmp_path):
    with pytest.raises(DataError, match="image list not found"):
        csv_list(str(tmp_path / "nope.csv"), str(tmp_path))
