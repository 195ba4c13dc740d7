"""The named image sources, one registry: name -> (training split, evaluation split).

Each source reads some of the options below and refuses the others when
they are set, so an option that would be ignored (a CSV list given to a
folder source, say) is an error, not a silent no-op.

>>> sorted(SOURCES)
['csv', 'fashion_mnist', 'folder', 'synthetic', 'tfds']
>>> load_source("folder", data_dir="", train_list="a.csv")
Traceback (most recent call last):
...
prism_tf.data.sources.DataError: source 'folder' does not read train_list (set to 'a.csv')
"""

from pathlib import Path
from typing import Callable, Dict, Tuple

from prism_tf.data.sources import (DataError, ImageSplit, csv_list, fashion_mnist,
                                   image_folder, split_classes, synthetic, tfds_dataset)
from prism_tf.data.synthetic import family_size

Splits = Tuple[ImageSplit, ImageSplit]
# The options a source may read, with their "not set" values.
OPTIONS = dict(data_dir="", name="", train_list="", test_list="", clean_list="", test_dir="")


def list_path(name: str, data_dir: str) -> str:
    """Where an image list is: like the image paths inside it, a relative
    name is under `data_dir`; an absolute one is used as it is.

    >>> list_path("train.csv", "/data/cars"), list_path("/lists/train.csv", "/data/cars")
    ('/data/cars/train.csv', '/lists/train.csv')
    """
    return str(Path(data_dir or ".") / name)


def _synthetic(name: str, seed: int, image_size: int) -> Splits:
    """name "": the objects family, split by class; "pretraining": all 200
    classes of that family, evaluated on the objects test classes (where
    the runs that fine-tune from it are evaluated)."""
    if name not in ("", "pretraining"):
        raise DataError(f"source 'synthetic': name must be '' (objects) or 'pretraining'; "
                        f"got {name!r}")
    test = synthetic("test", seed=seed, image_size=image_size)
    if name == "pretraining":
        return (synthetic("all", num_classes=family_size("pretraining"), seed=seed,
                          image_size=image_size, family="pretraining"), test)
    return synthetic("train", seed=seed, image_size=image_size), test


def _fashion_mnist(data_dir: str) -> Splits:
    return fashion_mnist("train", data_dir or None), fashion_mnist("test", data_dir or None)


def _tfds(name: str, data_dir: str) -> Splits:
    return tuple(tfds_dataset(name, part, data_dir=data_dir or None) for part in ("train", "test"))


def _csv(data_dir: str, train_list: str, test_list: str, clean_list: str) -> Splits:
    clean = list_path(clean_list, data_dir) if clean_list else None
    return (csv_list(list_path(train_list, data_dir), data_dir, clean),
            csv_list(list_path(test_list, data_dir), data_dir))


def _folder(data_dir: str, test_dir: str) -> Splits:
    train = image_folder(data_dir)
    if test_dir:
        return train, image_folder(test_dir)
    return split_classes(train, "train"), split_classes(train, "test")


# name -> (loader, the OPTIONS it reads); seed and image_size go to synthetic only.
SOURCES: Dict[str, Tuple[Callable[..., Splits], Tuple[str, ...]]] = {
    "synthetic": (_synthetic, ("name",)),
    "fashion_mnist": (_fashion_mnist, ("data_dir",)),
    "tfds": (_tfds, ("name", "data_dir")),
    "csv": (_csv, ("data_dir", "train_list", "test_list", "clean_list")),
    "folder": (_folder, ("data_dir", "test_dir")),
}


def load_source(source: str, seed: int = 0, image_size: int = 32, **options: str) -> Splits:
    """(training split, evaluation split) of the named source.

    `options` are among OPTIONS; one the source does not read must be unset
    (""). `seed` and `image_size` shape the synthetic set only.
    """
    if source not in SOURCES:
        raise DataError(f"unknown source {source!r}: expected one of {sorted(SOURCES)}")
    loader, reads = SOURCES[source]
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise TypeError(f"load_source: unknown options {sorted(unknown)}")
    for key, value in options.items():
        if key not in reads and value != OPTIONS[key]:
            raise DataError(f"source {source!r} does not read {key} (set to {value!r})")
    arguments = {key: options.get(key, OPTIONS[key]) for key in reads}
    if source == "synthetic":
        arguments.update(seed=seed, image_size=image_size)
    return loader(**arguments)
