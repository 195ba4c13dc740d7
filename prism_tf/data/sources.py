"""Image sources: each returns an `ImageSplit` (labels + where every image is).

Sources check their input when called, before any training: missing files,
labels that are not non-negative integers, empty classes and unknown names
raise `DataError` naming the file and line, folder or value.
"""

import csv
import dataclasses
import gzip
import os
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from prism_tf.data.noise import NoiseReport, inject_noise
from prism_tf.data.synthetic import make_synthetic_images

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")


class DataError(ValueError):
    """Input data that cannot be used, with where and why."""


@dataclasses.dataclass(frozen=True)
class ImageSplit:
    """The samples of one split: their labels and where each image is.

    Exactly one of `pixels` (uint8 [N, H, W, C] in memory), `encoded`
    (JPEG/PNG bytes [N] in memory) or `paths` (image files [N]) is set.
    `labels` are what the model sees (noisy after `with_noise`);
    `is_noisy` is the ground truth, False where unknown. `ground_truth` says
    whether it is known: the built-in synthetic set's labels are right by
    construction, a CSV clean list marks the wrong ones, injected noise
    knows what it changed; a folder's, a TFDS set's or Fashion-MNIST's own
    labels are as given. `class_names` [num_classes], where the source
    has them, names label i (a folder's class folder, Fashion-MNIST's
    classes, a TFDS ClassLabel's names, a CSV's label as written there
    before re-indexing); None otherwise.
    """

    name: str
    labels: np.ndarray
    num_classes: int
    is_noisy: np.ndarray
    pixels: Optional[np.ndarray] = None
    encoded: Optional[np.ndarray] = None
    paths: Optional[np.ndarray] = None
    noise: Optional[NoiseReport] = None
    skipped: Tuple[str, ...] = ()   # images left out because they cannot be decoded
    repeats_dropped: Tuple[str, ...] = ()   # left out: the same image came earlier
    # (min height, min width, max height, max width), once the images were checked
    size_range: Optional[Tuple[int, int, int, int]] = None
    ground_truth: bool = False
    # What verdicts (prism_tf.data.verdicts) changed: file, sha256, counts.
    verdicts: Optional[Dict[str, object]] = None
    class_names: Optional[Tuple[str, ...]] = None

    def __post_init__(self):
        if sum(x is not None for x in (self.pixels, self.encoded, self.paths)) != 1:
            raise ValueError("ImageSplit: set exactly one of pixels, encoded, paths")
        if not len(self.labels) == len(self.is_noisy) == len(self.images):
            raise ValueError("ImageSplit: labels, is_noisy and images differ in length")
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(f"ImageSplit: {len(self.class_names)} class names for "
                             f"{self.num_classes} classes")

    def class_name(self, label: int) -> str:
        """Label `label`'s name, or the label itself where the source has no names."""
        return str(label) if self.class_names is None else self.class_names[label]

    @property
    def images(self) -> np.ndarray:
        for storage in (self.pixels, self.encoded, self.paths):
            if storage is not None:
                return storage

    def __len__(self) -> int:
        return len(self.labels)

    def with_noise(self, kind: str, rate: float, seed: int) -> "ImageSplit":
        """This split with label noise of `kind` at `rate` (see `noise.py`).

        Labels the source already knows to be wrong (a CSV clean list) stay
        flagged noisy, with `kind="none"` too, so kept purity and noise
        recall measure the real noise; the report counts them. Noise of any
        other kind than `none` makes the ground truth known.
        """
        noisy = inject_noise(self.labels, kind, rate, seed, self.num_classes)
        is_noisy = noisy.is_noisy | self.is_noisy
        report = dataclasses.replace(
            noisy.report, num_noisy=int(is_noisy.sum()),
            realized_rate=float(is_noisy.mean()) if is_noisy.size else 0.0)
        return dataclasses.replace(
            self, labels=noisy.labels, is_noisy=is_noisy,
            num_classes=noisy.report.num_classes, noise=report,
            ground_truth=self.ground_truth or kind != "none")

    def subset(self, keep: np.ndarray, name: str) -> "ImageSplit":
        """The samples where `keep` is true, labels re-indexed from 0 (the
        class names follow them)."""
        classes, labels = np.unique(self.labels[keep], return_inverse=True)
        return dataclasses.replace(
            self, name=name, labels=labels.astype(np.int32), num_classes=int(classes.size),
            is_noisy=self.is_noisy[keep], class_names=_names_of(self.class_names, classes),
            **{field: getattr(self, field)[keep]
               for field in ("pixels", "encoded", "paths") if getattr(self, field) is not None})


def _names_of(names: Optional[Union[Sequence[str], Mapping[int, str]]], classes: np.ndarray
              ) -> Optional[Tuple[str, ...]]:
    """The names of `classes` (label values), None without names."""
    return None if names is None else tuple(names[int(c)] for c in classes)


def split_classes(split: ImageSplit, part: str) -> ImageSplit:
    """The DML protocol: the first half of the classes trains, the rest tests."""
    if part not in ("train", "test"):
        raise DataError(f"class split part must be 'train' or 'test'; got {part!r}")
    first_test_class = split.num_classes // 2
    keep = (split.labels < first_test_class) == (part == "train")
    return split.subset(keep, f"{split.name}/{part}")


def _from_labels(name: str, labels: Sequence[int], is_noisy: Optional[np.ndarray] = None,
                 ground_truth: bool = False,
                 class_names: Optional[Union[Sequence[str], Mapping[int, str]]] = None,
                 **storage) -> ImageSplit:
    """A split whose labels are re-indexed to 0..C-1 in sorted order;
    `class_names` names the labels as given (index: label value)."""
    classes, index = np.unique(np.asarray(labels), return_inverse=True)
    return ImageSplit(name=name, labels=index.astype(np.int32), num_classes=int(classes.size),
                      is_noisy=np.zeros(index.size, bool) if is_noisy is None else is_noisy,
                      ground_truth=ground_truth, class_names=_names_of(class_names, classes),
                      **storage)


def synthetic(part: str, num_classes: int = 200, images_per_class: int = 40,
              image_size: int = 32, seed: int = 0, family: str = "objects") -> ImageSplit:
    """The built-in synthetic set of a family (`prism_tf.data.synthetic`),
    split by class (`part`: train or test) or whole (`part`: all)."""
    images, labels = make_synthetic_images(num_classes, images_per_class, image_size, seed,
                                           family)
    name = "synthetic" if family == "objects" else f"synthetic-{family}"
    whole = _from_labels(name, labels, ground_truth=True, pixels=images)
    if part == "all":
        return dataclasses.replace(whole, name=f"{name}/all")
    return split_classes(whole, part)


def _read_idx(path: Path, expected_dims: int) -> np.ndarray:
    """An IDX file (optionally gzipped) as a uint8 array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08 or data[3] != expected_dims:
        raise DataError(f"{path}: not an IDX file of {expected_dims}-D unsigned bytes")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(expected_dims))
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * expected_dims)
    if body.size != np.prod(shape):
        raise DataError(f"{path}: header says {shape}, file holds {body.size} values")
    return body.reshape(shape)


def _find_idx(directories: Sequence[Path], stem: str) -> Path:
    for directory in directories:
        for candidate in (directory / stem, directory / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
    raise DataError(f"Fashion-MNIST file {stem}[.gz] not found in any of: "
                    + ", ".join(str(d) for d in directories))


def fashion_mnist(part: str, data_dir: Optional[str] = None) -> ImageSplit:
    """Fashion-MNIST's own train or test split (same 10 classes) from IDX files.

    Looks in `data_dir`, else Debian's /usr/share/datasets/fashion-mnist, else
    the Keras cache (~/.keras/datasets/fashion-mnist).
    """
    if part not in ("train", "test"):
        raise DataError(f"Fashion-MNIST part must be 'train' or 'test'; got {part!r}")
    directories = ([Path(data_dir)] if data_dir else
                   [Path(DEBIAN_FASHION_MNIST), Path.home() / ".keras/datasets/fashion-mnist"])
    prefix = "train" if part == "train" else "t10k"
    images = _read_idx(_find_idx(directories, f"{prefix}-images-idx3-ubyte"), 3)
    labels = _read_idx(_find_idx(directories, f"{prefix}-labels-idx1-ubyte"), 1)
    if len(images) != len(labels):
        raise DataError(f"Fashion-MNIST {part}: {len(images)} images but {len(labels)} labels")
    return _from_labels(f"fashion_mnist/{part}", labels, pixels=images[..., None],
                        class_names=FASHION_MNIST_CLASSES)


def _check_files(paths: Sequence[str], where: Sequence[str]) -> None:
    for path, place in zip(paths, where):
        if not os.path.isfile(path):
            raise DataError(f"{place}: image file not found: {path}")


def _parse_label(text: str, where: str) -> int:
    try:
        label = int(text)
    except ValueError:
        raise DataError(f"{where}: label must be a non-negative integer; got {text!r}") from None
    if label < 0:
        raise DataError(f"{where}: label must be a non-negative integer; got {label}")
    return label


def _read_list(list_file: Path, root: Path):
    """(paths, labels, where) from a 'path,label' CSV; a 'path,label' header is skipped."""
    paths, labels, where = [], [], []
    # utf-8-sig: a list saved by a spreadsheet starts with a byte-order mark.
    with open(list_file, newline="", encoding="utf-8-sig") as f:
        for number, row in enumerate(csv.reader(f), start=1):
            if not row or (number == 1 and [c.strip() for c in row] == ["path", "label"]):
                continue
            place = f"{list_file}:{number}"
            if len(row) != 2:
                raise DataError(f"{place}: expected 'path,label'; got {','.join(row)!r}")
            labels.append(_parse_label(row[1].strip(), place))
            paths.append(str(root / row[0].strip()))
            where.append(place)
    if not paths:
        raise DataError(f"{list_file}: no samples")
    return paths, labels, where


def csv_list(list_file: str, root: str, clean_list: Optional[str] = None) -> ImageSplit:
    """Images listed as 'path,label' lines under `root` (the PRISM authors' format).

    With `clean_list` (the matching list of the clean subset), samples not in
    it are flagged noisy. Labels are re-indexed to 0..C-1 in sorted order.
    """
    list_file, root = Path(list_file), Path(root)
    if not list_file.is_file():
        raise DataError(f"image list not found: {list_file}")
    paths, labels, where = _read_list(list_file, root)
    _check_files(paths, where)
    is_noisy = np.zeros(len(paths), bool)
    if clean_list is not None:
        if not Path(clean_list).is_file():
            raise DataError(f"clean list not found: {clean_list}")
        clean = set(_read_list(Path(clean_list), root)[0])
        is_noisy = np.array([p not in clean for p in paths])
    # The label as the list writes it names the class (labels are re-indexed).
    return _from_labels(str(list_file), labels, is_noisy, ground_truth=clean_list is not None,
                        class_names={label: str(label) for label in set(labels)},
                        paths=np.array(paths))


def image_folder(root: str) -> ImageSplit:
    """Images in `root/<class>/...`; classes are the sorted subfolder names."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder not found: {root}")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir())
    if not class_dirs:
        raise DataError(f"{root}: no class subfolders")
    paths, labels = [], []
    for label, class_dir in enumerate(class_dirs):
        files = sorted(str(f) for f in class_dir.rglob("*")
                       if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        if not files:
            raise DataError(f"{class_dir}: empty class (no {'/'.join(IMAGE_SUFFIXES)} files)")
        paths += files
        labels += [label] * len(files)
    return _from_labels(str(root), labels, paths=np.array(paths),
                        class_names=[d.name for d in class_dirs])


# Per-dataset differences from the usual ("image", "label", split in halves).
TFDS_LABEL_KEYS = {"stanford_online_products": "class_id"}
TFDS_OFFICIAL_CLASS_SPLIT = ("stanford_online_products",)


def tfds_dataset(name: str, part: str, data_dir: Optional[str] = None,
                 class_split: Optional[str] = None, image_key: str = "image",
                 label_key: Optional[str] = None, download: bool = False,
                 pooled_splits: Sequence[str] = ("train", "test")) -> ImageSplit:
    """An image-classification TFDS builder, e.g. cars196, caltech_birds2011,
    stanford_online_products.

    `class_split="halves"` (default for CARS and CUB) pools `pooled_splits`
    and gives the first half of the classes to train, the rest to test;
    `"official"` (default for SOP, whose splits are already class-disjoint)
    reads the builder's own `part` split. Images stay encoded in memory and
    are decoded by the input pipeline. Needs the data prepared in
    `data_dir` unless `download`.
    """
    import tensorflow_datasets as tfds  # heavy; only this source needs it

    if part not in ("train", "test"):
        raise DataError(f"TFDS part must be 'train' or 'test'; got {part!r}")
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise DataError(f"unknown TFDS dataset name {name!r}") from None
    class_split = class_split or ("official" if name in TFDS_OFFICIAL_CLASS_SPLIT else "halves")
    if class_split not in ("halves", "official"):
        raise DataError(f"class_split must be 'halves' or 'official'; got {class_split!r}")
    label_key = label_key or TFDS_LABEL_KEYS.get(name, "label")
    features = builder.info.features
    for key in (image_key, label_key):
        if key not in features:
            raise DataError(f"TFDS {name}: no feature {key!r}; it has {sorted(features)}")
    if download:
        builder.download_and_prepare()
    splits = [part] if class_split == "official" else list(pooled_splits)
    data = builder.as_dataset(split="+".join(splits), shuffle_files=False,
                              decoders={image_key: tfds.decode.SkipDecoding()})
    encoded, labels = [], []
    for example in data.as_numpy_iterator():
        encoded.append(example[image_key])
        labels.append(int(example[label_key]))
    if not labels:
        raise DataError(f"TFDS {name} {'+'.join(splits)}: no examples")
    read = _from_labels(f"{name}/{'+'.join(splits)}", labels,
                        encoded=np.array(encoded, dtype=object),
                        class_names=getattr(features[label_key], "names", None))
    return split_classes(read, part) if class_split == "halves" else read
