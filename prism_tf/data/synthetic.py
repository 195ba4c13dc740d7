"""Built-in synthetic image classes, drawn in memory from a seed.

Every class (of the default "objects" family) is a distinct (shape,
texture, colour pair) combination; every
image of it shows that object at its own rotation, scale, position and
lighting, over its own background, with pixel noise. So classes differ by
what a retrieval model should learn and members differ by what it should
ignore. 200 classes of 40 images of 32 x 32 take about a second.
"""

import functools
import itertools

import numpy as np

SHAPES = ("disc", "square", "triangle", "cross", "ring", "star", "diamond", "bar")
TEXTURES = ("plain", "stripes", "checker", "dots", "waves")
HUES = np.linspace(0.0, 1.0, 9, endpoint=False)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB in [0, 1]; inputs broadcast, output [..., 3]."""
    k = (np.stack([5.0, 3.0, 1.0], -1) + h[..., None] * 6.0) % 6.0
    return v[..., None] - v[..., None] * s[..., None] * np.clip(
        np.minimum(k, 4.0 - k), 0.0, 1.0)


def _radius(x, y):
    return np.hypot(x, y)


# Inside-the-object tests and second-colour patterns, on object coordinates.
_SHAPE_TESTS = {
    "disc": lambda x, y: _radius(x, y) < 1.0,
    "square": lambda x, y: np.maximum(np.abs(x), np.abs(y)) < 0.85,
    "triangle": lambda x, y: (y > -0.6) & (y < 1.2 - 1.8 * np.abs(x)),
    "cross": lambda x, y: (((np.abs(x) < 0.3) | (np.abs(y) < 0.3))
                           & (np.maximum(np.abs(x), np.abs(y)) < 1.0)),
    "ring": lambda x, y: (_radius(x, y) < 1.0) & (_radius(x, y) > 0.55),
    "star": lambda x, y: _radius(x, y) < 0.55 + 0.4 * np.cos(5.0 * np.arctan2(y, x)),
    "diamond": lambda x, y: np.abs(x) + np.abs(y) < 1.1,
    "bar": lambda x, y: (np.abs(x) < 1.1) & (np.abs(y) < 0.35),
}
_TEXTURE_TESTS = {   # f: the texture's frequency
    "plain": lambda x, y, f: np.zeros(x.shape, bool),
    "stripes": lambda x, y, f: np.sin(f * np.pi * x) > 0,
    "checker": lambda x, y, f: np.sin(f * np.pi * x) * np.sin(f * np.pi * y) > 0,
    "dots": lambda x, y, f: np.hypot((x * f) % 2.0 - 1.0, (y * f) % 2.0 - 1.0) < 0.5,
    "waves": lambda x, y, f: np.sin(f * np.pi * (y + 0.25 * np.sin(f * x))) > 0,
}
_FREQUENCY = 4.0   # of every "objects" texture
# "pretraining" textures: band b spans [2.5 + 0.5 b, 2.75 + 0.5 b); 4.0 is in band 3.
_FREQUENCY_BANDS = 5
# "fine" textures: band b spans [2.0 + 0.35 b, 2.15 + 0.35 b), b < 10.
_FINE_BANDS = 10
FAMILIES = ("objects", "pretraining", "fine")


def _per_image(kind: np.ndarray, names, tests, x: np.ndarray, y: np.ndarray,
               *per_image: np.ndarray) -> np.ndarray:
    """Evaluates, for each image, the test its `kind` id names (with the
    image's `per_image` values, e.g. its texture frequency)."""
    result = np.zeros(x.shape, bool)
    for index, name in enumerate(names):
        rows = kind == index
        if rows.any():
            result[rows] = tests[name](x[rows], y[rows], *(v[rows] for v in per_image))
    return result


def _class_designs(family: str) -> list:
    """Every class of a family, as the tuple of the factors it fixes."""
    if family == "objects":        # (shape, texture, hue a, hue b)
        return [(s, t, a, b) for s, t, a, b in itertools.product(
            range(len(SHAPES)), range(len(TEXTURES)), range(len(HUES)), range(len(HUES)))
            if a != b]
    if family == "pretraining":   # (shape, texture, frequency band); hues vary per image
        return list(itertools.product(range(len(SHAPES)), range(len(TEXTURES)),
                                      range(_FREQUENCY_BANDS)))
    # fine: (shape, texture, frequency band), grey; "plain" has no frequency to vary
    return list(itertools.product(range(len(SHAPES)), range(1, len(TEXTURES)),
                                  range(_FINE_BANDS)))


def family_size(family: str) -> int:
    """How many distinct classes a family has.

    >>> [family_size(family) for family in FAMILIES]
    [2880, 200, 320]
    """
    if family not in FAMILIES:
        raise ValueError(f"synthetic data: family must be one of {FAMILIES}; got {family!r}")
    return len(_class_designs(family))


@functools.lru_cache(maxsize=4)
def make_synthetic_images(num_classes: int = 200, images_per_class: int = 40,
                          image_size: int = 32, seed: int = 0, family: str = "objects"):
    """Draws the images of `num_classes` distinct synthetic classes.

    Families (what a class fixes; the rest varies per image):
    - "objects": shape, texture and two hues (2,880 classes).
    - "pretraining": shape, texture and a band of texture frequencies; each
      image has its own two hues (200 classes). An encoder trained on it
      learns shapes and textures and to ignore colour, so on "objects"
      classes, which colour tells apart, it starts well and gains a lot
      from fine-tuning: ImageNet features on cars, in miniature.
    - "fine": shape, a patterned texture and one of 10 narrow bands of its
      frequency, in shades of grey of each image's own (320 classes). Classes
      that differ only by a band look alike: a fine-grained set on which a
      small CNN trained from scratch stays weak (docs/BENCHMARKS.md, "Hard
      sets").

    Returns (read-only arrays, cached: the train and test halves share one draw):
      images: uint8 [num_classes * images_per_class, size, size, 3] (1 channel
        for "fine").
      labels: int32 [N], class of each image, grouped by class.
    """
    combinations = family_size(family)
    if not 1 <= num_classes <= combinations:
        raise ValueError(f"synthetic data: num_classes must be in [1, {combinations}] for "
                         f"family {family!r}; got {num_classes}")
    if images_per_class < 1 or image_size < 8:
        raise ValueError("synthetic data: images_per_class >= 1 and image_size >= 8 needed")
    rng = np.random.default_rng(seed)
    designs = _class_designs(family)
    chosen = rng.choice(len(designs), size=num_classes, replace=False)
    design = np.array([designs[i] for i in chosen])
    labels = np.repeat(np.arange(num_classes), images_per_class)
    n = labels.size
    if family == "objects":
        shape, texture, hue_a, hue_b = design[labels].T
        frequency = np.full(n, _FREQUENCY)
    elif family == "pretraining":
        shape, texture, band = design[labels].T
        frequency = 2.5 + 0.5 * band + rng.uniform(0.0, 0.25, n)
    else:
        shape, texture, band = design[labels].T
        frequency = 2.0 + 0.35 * band + rng.uniform(0.0, 0.15, n)
    if family != "objects":
        hue_a = rng.integers(0, len(HUES), n)
        hue_b = (hue_a + rng.integers(1, len(HUES), n)) % len(HUES)
    saturation = 0.0 if family == "fine" else 0.85
    # Grey has only brightness to tell the texture's two colours apart.
    contrast = rng.uniform(0.35, 0.65, n) if family == "fine" else np.ones(n)

    # Pose of each image: the object's own frame from pixel coordinates.
    grid = np.linspace(-1.0, 1.0, image_size)
    gx, gy = np.meshgrid(grid, grid)
    theta = rng.uniform(0, 2 * np.pi, n)[:, None, None]
    scale = rng.uniform(0.45, 0.8, n)[:, None, None]
    shift_x, shift_y = (rng.uniform(-0.3, 0.3, (2, n))[..., None, None])
    dx, dy = gx[None] - shift_x, gy[None] - shift_y
    x = (np.cos(theta) * dx + np.sin(theta) * dy) / scale
    y = (-np.sin(theta) * dx + np.cos(theta) * dy) / scale

    inside = _per_image(shape, SHAPES, _SHAPE_TESTS, x, y)
    second = _per_image(texture, TEXTURES, _TEXTURE_TESTS, x, y, frequency[:, None, None])
    brightness = rng.uniform(0.7, 1.0, n)
    colour_a = _hsv_to_rgb(HUES[hue_a] + rng.normal(0, 0.02, n), np.full(n, saturation),
                           brightness)
    colour_b = _hsv_to_rgb(HUES[hue_b] + rng.normal(0, 0.02, n), np.full(n, saturation),
                           brightness * contrast)
    background = _hsv_to_rgb(rng.uniform(0, 1, n),
                             rng.uniform(0, 0.25, n) * (saturation > 0),
                             rng.uniform(0.1, 0.5, n))
    foreground = np.where(second[..., None], colour_b[:, None, None], colour_a[:, None, None])
    image = np.where(inside[..., None], foreground, background[:, None, None])
    image = image + rng.normal(0, 0.04, image.shape)
    if family == "fine":
        image = image.mean(-1, keepdims=True)
    images = (np.clip(image, 0, 1) * 255).astype(np.uint8)
    labels = labels.astype(np.int32)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels
