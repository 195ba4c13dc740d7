"""The named image sources, one registry: name -> loader of (training split,
evaluation split).

A loader's keyword arguments with defaults are the source's options: they
become `config.data.<source>` when a config is made (`defaults`), so a
source's group holds exactly what it reads and an option another source
would ignore cannot be set on it. `seed` and `image_size` are given at run
time to the loaders that name them (the synthetic set draws and renders
with them).

>>> sorted(SOURCES)
['csv', 'fashion_mnist', 'folder', 'synthetic', 'tfds']
>>> defaults("csv")
{'data_dir': '', 'train_list': '', 'test_list': '', 'clean_list': ''}
>>> load_source("folder", data_dir="", train_list="a.csv")
Traceback (most recent call last):
...
prism_tf.data.sources.DataError: source 'folder' does not read train_list; its options: ['data_dir', 'test_dir']
"""

import inspect
from pathlib import Path
from typing import Callable, Dict, Tuple

from prism_tf.data.sources import (DataError, ImageSplit, csv_list, fashion_mnist,
                                   image_folder, split_classes, synthetic, tfds_dataset)
from prism_tf.data.synthetic import family_size

Splits = Tuple[ImageSplit, ImageSplit]
# What only the pipeline knows; a loader takes those its signature names.
RUN_TIME_ARGUMENTS = ("seed", "image_size")
SYNTHETIC_SETS = ("objects", "pretraining")


def list_path(name: str, data_dir: str) -> str:
    """Where an image list is: like the image paths inside it, a relative
    name is under `data_dir`; an absolute one is used as it is.

    >>> list_path("train.csv", "/data/cars"), list_path("/lists/train.csv", "/data/cars")
    ('/data/cars/train.csv', '/lists/train.csv')
    """
    return str(Path(data_dir or ".") / name)


def _synthetic(seed: int, image_size: int, family: str = "objects") -> Splits:
    """family "objects": that family split by class; "pretraining": all 200
    classes of that family, evaluated on the objects test classes (where
    the runs that fine-tune from it are evaluated)."""
    if family not in SYNTHETIC_SETS:
        raise DataError(f"source 'synthetic': family must be one of {SYNTHETIC_SETS}; "
                        f"got {family!r}")
    test = synthetic("test", seed=seed, image_size=image_size)
    if family == "pretraining":
        return (synthetic("all", num_classes=family_size("pretraining"), seed=seed,
                          image_size=image_size, family="pretraining"), test)
    return synthetic("train", seed=seed, image_size=image_size), test


def _fashion_mnist(data_dir: str = "") -> Splits:
    return fashion_mnist("train", data_dir or None), fashion_mnist("test", data_dir or None)


def _tfds(name: str = "", data_dir: str = "") -> Splits:
    return tuple(tfds_dataset(name, part, data_dir=data_dir or None) for part in ("train", "test"))


def _csv(data_dir: str = "", train_list: str = "", test_list: str = "",
         clean_list: str = "") -> Splits:
    clean = list_path(clean_list, data_dir) if clean_list else None
    return (csv_list(list_path(train_list, data_dir), data_dir, clean),
            csv_list(list_path(test_list, data_dir), data_dir))


def _folder(data_dir: str = "", test_dir: str = "") -> Splits:
    train = image_folder(data_dir)
    if test_dir:
        return train, image_folder(test_dir)
    return split_classes(train, "train"), split_classes(train, "test")


SOURCES: Dict[str, Callable[..., Splits]] = {
    "synthetic": _synthetic,
    "fashion_mnist": _fashion_mnist,
    "tfds": _tfds,
    "csv": _csv,
    "folder": _folder,
}


def defaults(source: str) -> Dict[str, object]:
    """The options of `source` with their defaults, read from its loader:
    what `config.data.<source>` starts from."""
    return {parameter.name: parameter.default
            for parameter in inspect.signature(_registered(source)).parameters.values()
            if parameter.name not in RUN_TIME_ARGUMENTS and parameter.default is not parameter.empty}


def load_source(source: str, seed: int = 0, image_size: int = 32, **options) -> Splits:
    """(training split, evaluation split) of the named source, from its
    `options` (`defaults`; one it does not read is a `DataError`). `seed`
    and `image_size` go to the loaders that take them."""
    loader, reads = _registered(source), list(defaults(source))
    unread = sorted(set(options) - set(reads))
    if unread:
        raise DataError(f"source {source!r} does not read {', '.join(unread)}; "
                        f"its options: {reads}")
    takes = inspect.signature(loader).parameters
    run_time = {key: value for key, value in (("seed", seed), ("image_size", image_size))
                if key in takes}
    return loader(**options, **run_time)


def _registered(source: str) -> Callable[..., Splits]:
    if source not in SOURCES:
        raise DataError(f"unknown source {source!r}: expected one of {sorted(SOURCES)}")
    return SOURCES[source]
