"""tf.data pipelines over an `ImageSplit`: per-sample, P x K training and evaluation.

Labels and noise flags are gathered from in-graph tables by sample index;
images are read by index (pixels in memory, JPEG/PNG bytes in memory, or
files), decoded, augmented with stateless ops seeded by (seed, step,
position), so the same seed gives the same batches, and a run resumed at
`start_step` continues the same sequence.

A JPEG/PNG that is not a whole image (wrong signature, truncated: no end
marker near its end) is counted and logged by a `CorruptImageLog`, in a
training batch replaced by another image of the same class group, and left
out of evaluation; with `strict=True` it raises with its path instead. A
file whose markers are intact but whose body is damaged passes that check:
`drop_undecodable` (which the pipelines run on every split) finds those.
"""

import dataclasses
from typing import Iterator, List, Optional, Tuple

from absl import logging
import numpy as np
import tensorflow as tf

from prism_tf.data.image_header import check_declared_size
from prism_tf.data.sources import DataError, ImageSplit

AUTOTUNE = tf.data.AUTOTUNE
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_PLACEHOLDER_SIZE = 8


def source_channels(split: ImageSplit) -> int:
    """Channels of the split's images as stored; files decode to RGB."""
    return split.pixels.shape[-1] if split.pixels is not None else 3


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How images become model inputs.

    Training: random resized crop (area share `crop_scale`, aspect 3/4-4/3)
    to `image_size`, random horizontal flip if `flip` (wrong for text,
    logos, digits). Evaluation: resize the shorter side to
    `image_size * eval_resize`, centre crop `image_size` (eval_resize 1:
    no border cut). Then x / 255, minus `mean`, over `std` (None: leave in
    [0, 1]).
    """

    image_size: int = 224
    channels: Optional[int] = None   # None: the source's own (3 for files)
    crop_scale: Tuple[float, float] = (0.2, 1.0)
    eval_resize: float = 256 / 224
    flip: bool = True
    mean: Optional[Tuple[float, ...]] = IMAGENET_MEAN
    std: Optional[Tuple[float, ...]] = IMAGENET_STD

    def for_split(self, split: ImageSplit) -> "Preprocessing":
        """This preprocessing with `channels` worked out for `split` (its own
        unless set), checked against `mean` and `std`: the one place the
        channel count is decided; everything downstream reads `channels`."""
        channels = self.channels or source_channels(split)
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None and len(value) != channels:
                raise DataError(f"preprocessing {name} has {len(value)} values for "
                                f"{channels}-channel images of {split.name}")
        return dataclasses.replace(self, channels=channels)

    def normalize(self, image: tf.Tensor) -> tf.Tensor:
        image = tf.cast(image, tf.float32) / 255.0
        if self.mean is not None:
            image -= tf.constant(self.mean, tf.float32)
        if self.std is not None:
            image /= tf.constant(self.std, tf.float32)
        return image

    def train_view(self, image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
            tf.shape(image), bounding_boxes=tf.zeros([1, 0, 4]), seed=crop_seed,
            min_object_covered=0.0, aspect_ratio_range=(3 / 4, 4 / 3),
            area_range=self.crop_scale, max_attempts=10,
            use_image_if_no_bounding_boxes=True)
        crop = tf.image.resize(tf.slice(image, begin, size), [self.image_size] * 2)
        if self.flip:
            crop = tf.image.stateless_random_flip_left_right(crop, flip_seed)
        return self.normalize(crop)

    def eval_view_of_file(self, data: tf.Tensor) -> tf.Tensor:
        """`eval_view` of JPEG/PNG/GIF/BMP bytes, decoded to `channels`
        (set: `for_split`); what an export's `embed_encoded` and a client
        preparing `serving_default` inputs both do. The size the header
        declares is checked first (`prism_tf.data.image_header`): no more
        than 64 megapixels, sides no more than 20 times apart."""
        with tf.control_dependencies([check_declared_size(data)]):
            image = tf.io.decode_image(data, channels=self.channels, expand_animations=False)
        return self.eval_view(image)

    def eval_view(self, image: tf.Tensor) -> tf.Tensor:
        shape = tf.cast(tf.shape(image)[:2], tf.float32)
        target = self.image_size * self.eval_resize
        resized = tf.image.resize(
            image, tf.cast(tf.round(shape * target / tf.reduce_min(shape)), tf.int32))
        crop = tf.image.resize_with_crop_or_pad(resized, self.image_size, self.image_size)
        return self.normalize(crop)


class CorruptImageLog:
    """Counts and logs images that are not whole JPEG/PNG files."""

    def __init__(self, strict: bool = False):
        self.strict = strict
        self.sources: List[str] = []

    @property
    def count(self) -> int:
        return len(self.sources)

    def report(self, source: tf.Tensor) -> np.int64:
        name = source.numpy().decode("utf-8", "replace")
        if self.strict:
            raise DataError(f"corrupt or unreadable image: {name}")
        self.sources.append(name)
        logging.warning("Skipped corrupt image %s (%d so far)", name, self.count)
        return np.int64(self.count)


def _contains(data_bytes: tf.Tensor, marker: bytes) -> tf.Tensor:
    """Whether a 1-D tensor of single bytes contains `marker` contiguously."""
    n = tf.size(data_bytes) - len(marker) + 1
    found = tf.ones([tf.maximum(n, 0)], tf.bool)
    for offset, byte in enumerate(marker):
        found &= tf.equal(data_bytes[offset:offset + tf.maximum(n, 0)], bytes([byte]))
    return tf.reduce_any(found)


def looks_like_whole_image(data: tf.Tensor) -> tf.Tensor:
    """JPEG with its end marker, or PNG with its IEND chunk, near the end."""
    head = tf.strings.substr(data, 0, 8)
    tail = tf.strings.bytes_split(
        tf.strings.substr(data, tf.maximum(tf.strings.length(data) - 64, 0), 64))
    jpeg = tf.equal(tf.strings.substr(head, 0, 3), b"\xff\xd8\xff") & _contains(tail, b"\xff\xd9")
    png = tf.equal(head, b"\x89PNG\r\n\x1a\n") & _contains(tail, b"IEND")
    return jpeg | png


class ImageReader:
    """Reads sample `index` of a split in the graph: (uint8 image [H, W, C], ok)."""

    def __init__(self, split: ImageSplit, channels: int, log: CorruptImageLog):
        self.split, self.channels, self.log = split, channels, log
        # Variables, not constants: a split's bytes may exceed a graph's 2 GB.
        if split.pixels is not None:
            self._store = tf.Variable(split.pixels, trainable=False)
        elif split.encoded is not None:
            self._store = tf.Variable(split.encoded.astype(bytes), trainable=False)
        else:
            self._store = tf.constant(split.paths.astype(str))

    def source(self, index) -> tf.Tensor:
        """Where sample `index` of an encoded or file split comes from: its
        path, or "<split> sample <index>"."""
        if self.split.encoded is not None:
            return tf.strings.join([self.split.name, " sample ", tf.strings.as_string(index)])
        return tf.gather(self._store, index)

    def encoded(self, index: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        """(file bytes, source) of sample `index` of an encoded or file split."""
        source = self.source(index)
        if self.split.encoded is not None:
            return tf.gather(self._store, index), source
        return tf.io.read_file(source), source

    def __call__(self, index: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        if self.split.pixels is not None:
            return tf.gather(self._store, index), tf.constant(True)
        data, source = self.encoded(index)
        ok = looks_like_whole_image(data)

        def placeholder():
            count = tf.py_function(self.log.report, [source], tf.int64)
            with tf.control_dependencies([count]):
                return tf.zeros([_PLACEHOLDER_SIZE, _PLACEHOLDER_SIZE, self.channels], tf.uint8)

        image = tf.cond(ok, lambda: tf.io.decode_image(
            data, channels=self.channels, expand_animations=False), placeholder)
        return image, ok


def drop_undecodable(split: ImageSplit, strict: bool = False) -> ImageSplit:
    """Decodes every image of `split` once; returns the split without the
    ones that fail, their paths (or "split sample i" names) in `skipped`,
    and the smallest and largest image size in `size_range`.

    Catches what the in-graph structural check cannot: files whose markers
    are intact but whose body is damaged, which would otherwise stop a run
    with TensorFlow's decode error and no path. With `strict` a failure
    raises `DataError` naming the files instead. Pixel splits (nothing to
    decode) come back as they are. One pass over the files: about a minute
    for 100k JPEGs on 2 cores.
    """
    if split.pixels is not None:
        height, width = split.pixels.shape[1:3]
        return dataclasses.replace(split, size_range=(height, width, height, width))
    reader = ImageReader(split, source_channels(split), CorruptImageLog())

    def decodes(index):
        image = tf.io.decode_image(reader.encoded(index)[0], expand_animations=False)
        return index, tf.shape(image)[:2]

    survivors = (tf.data.Dataset.range(len(split))
                 .map(decodes, num_parallel_calls=AUTOTUNE, deterministic=True)
                 .ignore_errors().batch(4096))
    good = np.zeros(len(split), bool)
    low, high = np.full(2, np.iinfo(np.int32).max), np.zeros(2, np.int64)
    for indices, sizes in survivors:
        good[indices.numpy()] = True
        low, high = np.minimum(low, sizes.numpy().min(0)), np.maximum(high, sizes.numpy().max(0))
    bad = np.flatnonzero(~good)
    names = [reader.source(int(i)).numpy().decode() for i in bad]
    if names and strict:
        raise DataError(f"{len(names)} image(s) of {split.name} cannot be decoded: "
                        + ", ".join(names[:5]) + (" ..." if len(names) > 5 else ""))
    if names:
        logging.warning("Skipped %d image(s) of %s that cannot be decoded: %s%s", len(names),
                        split.name, ", ".join(names[:5]), " ..." if len(names) > 5 else "")
        split = split.subset(good, split.name)
    size_range = (*map(int, low), *map(int, high)) if good.any() else None
    return dataclasses.replace(split, skipped=split.skipped + tuple(names),
                               size_range=size_range)


def class_balanced_indices(labels: np.ndarray, classes_per_batch: int,
                           samples_per_class: int, seed: int,
                           start_step: int = 0) -> Iterator[np.ndarray]:
    """Endless P x K index batches: P distinct classes, K samples each.

    Batch `step` depends only on (seed, step). Samples are drawn without
    replacement within a class that has at least K of them, else with.
    Raises `DataError` when called (not at the first batch) if the labels
    have fewer than P classes.
    """
    classes, inverse = np.unique(labels, return_inverse=True)
    if classes.size < classes_per_batch:
        raise DataError(f"P x K batches need {classes_per_batch} classes; "
                        f"the labels have {classes.size}")
    members = [np.flatnonzero(inverse == c) for c in range(classes.size)]
    return _balanced_batches(members, classes_per_batch, samples_per_class, seed, start_step)


def _balanced_batches(members: List[np.ndarray], classes_per_batch: int,
                      samples_per_class: int, seed: int, step: int) -> Iterator[np.ndarray]:
    while True:
        rng = np.random.default_rng([seed, step])
        chosen = rng.choice(len(members), classes_per_batch, replace=False)
        yield np.concatenate([
            rng.choice(members[c], samples_per_class,
                       replace=members[c].size < samples_per_class) for c in chosen])
        step += 1


def sample_dataset(split: ImageSplit, log: Optional[CorruptImageLog] = None,
                   channels: Optional[int] = None,
                   indices: Optional[np.ndarray] = None) -> tf.data.Dataset:
    """Every sample (or those at `indices`) in order: dict(image uint8, label,
    index, is_noisy, ok)."""
    log = log or CorruptImageLog()
    read = ImageReader(split, channels or source_channels(split), log)
    labels, is_noisy = tf.constant(split.labels), tf.constant(split.is_noisy)

    def load(index):
        image, ok = read(index)
        return dict(image=image, label=tf.gather(labels, index), index=index,
                    is_noisy=tf.gather(is_noisy, index), ok=ok)

    order = (tf.data.Dataset.range(len(split)) if indices is None
             else tf.data.Dataset.from_tensor_slices(np.asarray(indices, np.int64)))
    return order.map(load, num_parallel_calls=AUTOTUNE, deterministic=True)


def _replace_bad_within_groups(images, labels, is_noisy, ok, group_size):
    """Swaps every bad sample for the first good one of its class group."""
    good = tf.reshape(ok, [-1, group_size])
    first_good = tf.argmax(tf.cast(good, tf.int32), axis=1, output_type=tf.int32)
    position = tf.reshape(tf.range(tf.size(ok)), [-1, group_size])
    source = tf.where(good, position, position[:, :1] + first_good[:, None])
    source = tf.reshape(source, [-1])
    return tf.gather(images, source), {"labels": tf.gather(labels, source),
                                       "is_noisy": tf.gather(is_noisy, source)}


def train_dataset(split: ImageSplit, classes_per_batch: int, samples_per_class: int,
                  preprocessing: Preprocessing = Preprocessing(), seed: int = 0,
                  start_step: int = 0, strict: bool = False,
                  log: Optional[CorruptImageLog] = None) -> tf.data.Dataset:
    """Endless P x K batches of (images float32, {"labels": int32,
    "is_noisy": bool}).

    The element is what `PrismModel.fit` takes: `labels` are the ones the
    model sees (noisy), `is_noisy` the ground truth, kept out of Keras's
    sample-weight slot.
    """
    log = log or CorruptImageLog(strict)
    preprocessing = preprocessing.for_split(split)
    read = ImageReader(split, preprocessing.channels, log)
    labels, is_noisy = tf.constant(split.labels), tf.constant(split.is_noisy)
    batch = classes_per_batch * samples_per_class

    def load(index, position_seed):
        image, ok = read(index)
        return (preprocessing.train_view(image, position_seed),
                tf.gather(labels, index), tf.gather(is_noisy, index), ok)

    def positions(step, indices):
        seeds = tf.stack([tf.fill([batch], tf.cast(seed, tf.int64)),
                          step * batch + tf.range(batch, dtype=tf.int64)], axis=1)
        return tf.data.Dataset.from_tensor_slices((indices, seeds))

    def index_batches():
        return class_balanced_indices(split.labels, classes_per_batch, samples_per_class,
                                      seed, start_step)

    index_batches()   # refuses impossible P x K batches now, not at the first step
    indices = tf.data.Dataset.from_generator(
        index_batches, output_signature=tf.TensorSpec([batch], tf.int64))
    return (tf.data.Dataset.zip(tf.data.Dataset.counter(start_step), indices)
            .flat_map(positions)
            .map(load, num_parallel_calls=AUTOTUNE, deterministic=True)
            .batch(batch, drop_remainder=True)
            .map(lambda *b: _replace_bad_within_groups(*b, samples_per_class))
            .prefetch(AUTOTUNE))


def eval_dataset(split: ImageSplit, batch_size: int = 256,
                 preprocessing: Preprocessing = Preprocessing(), strict: bool = False,
                 log: Optional[CorruptImageLog] = None) -> tf.data.Dataset:
    """All samples in order, batched: (images float32, labels int32).

    Images that fail the structural check are left out (counted and logged),
    not embedded as placeholders.
    """
    preprocessing = preprocessing.for_split(split)
    samples = sample_dataset(split, log or CorruptImageLog(strict), preprocessing.channels)
    return (samples.filter(lambda s: s["ok"])
            .map(lambda s: (preprocessing.eval_view(s["image"]), s["label"]),
                        num_parallel_calls=AUTOTUNE, deterministic=True)
            .batch(batch_size).prefetch(AUTOTUNE))
