"""Small image files and lists the data tests write into a temp dir."""

import gzip
from pathlib import Path

import numpy as np
import tensorflow as tf


def write_image(path: Path, seed: int, size=(20, 24)) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)
    encode = tf.io.encode_png if path.suffix == ".png" else tf.io.encode_jpeg
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(pixels).numpy())
    return path


def image_folder(root: Path, images_per_class=(3, 2, 4), seed: int = 0) -> Path:
    """root/class_i/img_j.(jpg|png), a few images per class; another `seed`
    gives other images (a test folder beside a training folder)."""
    for c, count in enumerate(images_per_class):
        for j in range(count):
            write_image(root / f"class_{c}" / f"img_{j}.{'png' if j % 2 else 'jpg'}",
                        10_000 * seed + 10 * c + j)
    return root


def write_idx(path: Path, array: np.ndarray) -> Path:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def damage_png_body(path: Path) -> Path:
    """Zeroes bytes in the middle of a PNG: signature and IEND stay intact,
    so only decoding finds it."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 40] = bytes(40)
    path.write_bytes(bytes(data))
    return path
