"""The same image twice, within a split or across the training and the
evaluation split: same file (after symlinks) or same bytes.

A query whose copy is in the gallery finds it first, so an evaluation split
with copies scores P@1 near 1 whatever the embeddings; an image in both
splits is evaluated on what trained.

>>> from prism_tf.data import synthetic
>>> split = synthetic("test", num_classes=4, images_per_class=2)   # 4 images
>>> twice = split.subset(np.r_[np.arange(len(split)), 0], split.name)
>>> [keys] = image_keys([twice])
>>> repeats(keys).nonzero()[0].tolist()
[4]
"""

import collections
import hashlib
import os
from typing import List, Sequence

import dataclasses
from typing import Tuple

import numpy as np

from prism_tf.data.sources import DataError, ImageSplit


def image_keys(splits: Sequence[ImageSplit]) -> List[np.ndarray]:
    """One key per sample of each split; equal keys are the same image.

    Images in memory are keyed by the sha256 of their bytes. Files by their
    real path, or, where another file has the same size, by the sha256 of
    their bytes: only those files are read.
    """
    real = {}
    for split in splits:
        if split.paths is not None:
            real.update({path: os.path.realpath(path) for path in split.paths})
    by_size = collections.defaultdict(set)
    for path in set(real.values()):
        by_size[os.path.getsize(path)].add(path)
    content = {path: _digest(open(path, "rb").read())
               for paths in by_size.values() if len(paths) > 1 for path in paths}
    keys = []
    for split in splits:
        if split.paths is not None:
            keys.append(np.array([content.get(real[p], f"path:{real[p]}") for p in split.paths]))
        elif split.encoded is not None:
            keys.append(np.array([_digest(item) for item in split.encoded]))
        else:
            keys.append(np.array([_digest(image.tobytes()) for image in split.pixels]))
    return keys


def repeats(keys: np.ndarray) -> np.ndarray:
    """Bool [N]: the samples whose key an earlier sample has."""
    _, first = np.unique(keys, return_index=True)
    repeated = np.ones(len(keys), bool)
    repeated[first] = False
    return repeated


def without_repeats(train: ImageSplit, test: ImageSplit) -> Tuple[ImageSplit, ImageSplit]:
    """Both splits without the images that repeat an earlier one of the same
    split (kept: the first; the others named in `repeats_dropped`). Raises
    `DataError` if an image is in both splits."""
    train_keys, test_keys = image_keys([train, test])
    shared = np.isin(test_keys, train_keys).nonzero()[0]
    if shared.size:
        raise DataError(
            f"{shared.size} images of the evaluation split {test.name} are in the training "
            f"split {train.name} too (the same file or the same bytes), e.g. "
            f"{sample_name(test, shared[0])}: retrieval would be scored on training images. "
            "Evaluate on other images (data.folder.test_dir, data.csv.test_list).")
    kept = []
    for split, keys in ((train, train_keys), (test, test_keys)):
        repeated = repeats(keys)
        if repeated.any():
            split = dataclasses.replace(
                split.subset(~repeated, split.name),
                repeats_dropped=tuple(sample_name(split, i) for i in repeated.nonzero()[0]))
        kept.append(split)
    return kept[0], kept[1]


def sample_name(split: ImageSplit, index: int) -> str:
    """A sample's file, or its place in an in-memory split."""
    return str(split.paths[index]) if split.paths is not None else f"{split.name} sample {index}"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
