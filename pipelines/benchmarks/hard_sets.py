r"""The hard benchmark sets, written as a user's data: PNG files and CSV lists.

    python -m pipelines.benchmarks.hard_sets --root=runs/hard-sets

Two sets on which the small CNN trained from scratch stays weak, each in
a "tuning" half (every choice is tuned on it) and a "report" half (run
once, at the end), with disjoint classes and images:
- `fine`: the synthetic "fine" family (grey shapes whose classes differ by
  a narrow band of texture frequency), 320 classes of 40 images, split at
  random (a fixed seed) into 160 tuning and 160 report classes; each half
  trains on 80 classes and retrieves on the other 80.
- `fashion_instances`: instance retrieval on Fashion-MNIST: a class is one
  Fashion-MNIST image, its members 20 views of it (rotated, scaled,
  shifted, with their own contrast, pixel noise and a blanked patch).
  Instances of one category differ in detail only. Tuning draws its 200
  instances (20 per category) from the train file, report from the test
  file; each half trains on 100 instances (10 per category) and retrieves
  on the other 100.

Each set is a folder `ROOT/<set>-<half>` holding `images/*.png`,
`train.csv` and `test.csv` ('path,label' lines), trained with
`--config=configs/noise_benchmark.py:hard --config.data.csv.data_dir=<folder>`.
"""

from pathlib import Path
from typing import Tuple

from absl import app, flags
import numpy as np
import tensorflow as tf

from .. import cli
from prism_tf.data.sources import fashion_mnist
from prism_tf.data.synthetic import family_size, make_synthetic_images
from prism_tf.files import write_atomically

FLAGS = flags.FLAGS
HALVES = ("tuning", "report")
IMAGE_SIZE = 32
SEED = 2026   # fixes the sets; not a run's seed
FINE_IMAGES_PER_CLASS = 40
VIEWS_PER_INSTANCE = 20
INSTANCES_PER_CATEGORY = 20


def _define_flags() -> None:
    flags.DEFINE_string("root", None, "Folder to write the sets into.")


def fine_halves() -> dict:
    """half -> (images uint8 [N, S, S, 1], labels [N]) of the fine family."""
    classes = family_size("fine")
    images, labels = make_synthetic_images(classes, FINE_IMAGES_PER_CLASS, IMAGE_SIZE, SEED,
                                           "fine")
    order = np.random.default_rng(SEED).permutation(classes)
    halves = {}
    for index, half in enumerate(HALVES):
        chosen = order[index * classes // 2:(index + 1) * classes // 2]
        rows = np.isin(labels, chosen)
        halves[half] = (images[rows], np.searchsorted(np.sort(chosen), labels[rows]))
    return halves


def _views(image: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` views of one grey image [H, W] in [0, 1], as uint8 [count, S, S]."""
    grid = np.linspace(-1.0, 1.0, IMAGE_SIZE)
    gx, gy = np.meshgrid(grid, grid)
    theta = rng.uniform(-0.35, 0.35, count)[:, None, None]
    scale = rng.uniform(0.8, 1.1, count)[:, None, None]
    shift = rng.uniform(-0.15, 0.15, (2, count))[..., None, None]
    # Where each output pixel samples the source image, in its [-1, 1] frame.
    x = (np.cos(theta) * gx + np.sin(theta) * gy) / scale + shift[0]
    y = (-np.sin(theta) * gx + np.cos(theta) * gy) / scale + shift[1]
    size = image.shape[0]
    col, row = (x + 1) * (size - 1) / 2, (y + 1) * (size - 1) / 2
    c0, r0 = np.floor(col).astype(int), np.floor(row).astype(int)
    fc, fr = col - c0, row - r0

    def at(r, c):
        inside = (r >= 0) & (r < size) & (c >= 0) & (c < size)
        return np.where(inside, image[np.clip(r, 0, size - 1), np.clip(c, 0, size - 1)], 0.0)

    view = ((1 - fr) * ((1 - fc) * at(r0, c0) + fc * at(r0, c0 + 1))
            + fr * ((1 - fc) * at(r0 + 1, c0) + fc * at(r0 + 1, c0 + 1)))
    view = view * rng.uniform(0.6, 1.0, (count, 1, 1)) + rng.uniform(0.0, 0.3, (count, 1, 1))
    view = view + rng.normal(0.0, 0.06, view.shape)
    for v, (top, left) in zip(view, rng.integers(0, IMAGE_SIZE - 10, (count, 2))):
        v[top:top + 10, left:left + 10] = rng.uniform(0.0, 1.0)
    return (np.clip(view, 0.0, 1.0) * 255).astype(np.uint8)


def fashion_instance_halves() -> dict:
    """half -> (images uint8 [N, S, S, 1], labels [N]) of Fashion-MNIST instances."""
    rng = np.random.default_rng(SEED)
    halves = {}
    for half, part in zip(HALVES, ("train", "test")):
        split = fashion_mnist(part)
        chosen = np.concatenate([
            rng.choice(np.flatnonzero(split.labels == category), INSTANCES_PER_CATEGORY,
                       replace=False)
            for category in range(split.num_classes)])
        # Train on the first half of each category's instances, retrieve on the rest.
        chosen = chosen.reshape(split.num_classes, 2, -1).transpose(1, 0, 2).reshape(-1)
        views = [_views(split.pixels[i, ..., 0] / 255.0, VIEWS_PER_INSTANCE, rng)
                 for i in chosen]
        halves[half] = (np.concatenate(views)[..., None],
                        np.repeat(np.arange(chosen.size), VIEWS_PER_INSTANCE))
    return halves


def write_set(folder: Path, images: np.ndarray, labels: np.ndarray) -> Tuple[int, int]:
    """Writes PNGs and train/test lists (first half of the classes trains);
    returns (train rows, test rows)."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    first_test_class = (labels.max() + 1) // 2
    lines = {"train": ["path,label"], "test": ["path,label"]}
    for index, (image, label) in enumerate(zip(images, labels)):
        name = f"images/{index:05d}.png"
        tf.io.write_file(str(folder / name), tf.io.encode_png(image))
        lines["train" if label < first_test_class else "test"].append(f"{name},{label}")
    for part, rows in lines.items():
        write_atomically(folder / f"{part}.csv", "\n".join(rows) + "\n")
    return len(lines["train"]) - 1, len(lines["test"]) - 1


SETS = {"fine": fine_halves, "fashion_instances": fashion_instance_halves}


def main(argv):
    del argv
    if not FLAGS.root:
        raise app.UsageError("--root is required")
    with cli.one_line_errors():
        for name, halves in SETS.items():
            for half, (images, labels) in halves().items():
                folder = Path(FLAGS.root) / f"{name}-{half}"
                train_rows, test_rows = write_set(folder, images, labels)
                print(f"{folder}: {train_rows} training and {test_rows} test images, "
                      f"{labels.max() + 1} classes")


if __name__ == "__main__":
    cli.run(main, _define_flags)
