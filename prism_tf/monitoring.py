"""TensorBoard views of a PRISM run: clean probabilities, rejected samples,
retrieval examples and an embedding projector (which Keras 3's TensorBoard
callback no longer writes)."""

from pathlib import Path
from typing import Dict, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins import projector
from tensorboard.plugins.histogram import metadata as histogram_metadata

from prism_tf.files import write_atomically
from prism_tf.selector import AUTO

PROJECTOR_TENSOR = "embedding/.ATTRIBUTES/VARIABLE_VALUE"


def embed(model: keras.Model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The model's embeddings of `images`, in batches.

    Not `model.predict`: inside `fit`, Keras 2's predict replaces
    `model.history`, so `fit` would return an empty History.
    """
    return np.concatenate([model(images[i:i + batch_size], training=False).numpy()
                           for i in range(0, len(images), batch_size)])


def displayable(images: tf.Tensor) -> tf.Tensor:
    """Each image rescaled to [0, 1] (undoes any mean/std normalisation for viewing)."""
    images = tf.cast(images, tf.float32)
    low = tf.reduce_min(images, axis=[1, 2, 3], keepdims=True)
    high = tf.reduce_max(images, axis=[1, 2, 3], keepdims=True)
    images = tf.math.divide_no_nan(images - low, high - low)
    return tf.image.grayscale_to_rgb(images) if images.shape[-1] == 1 else images


def image_grid(rows: tf.Tensor, border: Optional[np.ndarray] = None) -> tf.Tensor:
    """[R, C, H, W, 3] images in [0, 1] -> one [1, R*(H+2), C*(W+2), 3] grid.

    `border` [R, C] of 0/1/2 frames each image grey / red / green.
    """
    r, c = rows.shape[:2]
    colours = tf.constant([[0.5, 0.5, 0.5], [0.9, 0.1, 0.1], [0.1, 0.8, 0.1]])
    frame = tf.gather(colours, np.zeros((r, c), int) if border is None else border)
    padded = tf.pad(rows - frame[:, :, None, None, :], [[0, 0], [0, 0], [1, 1], [1, 1], [0, 0]])
    padded += frame[:, :, None, None, :]
    h, w = padded.shape[2:4]
    return tf.reshape(tf.transpose(padded, [0, 2, 1, 3, 4]), [1, r * h, c * w, 3])


HISTOGRAM_DESCRIPTIONS = {
    "label_rank": "Label rank of the {group} samples of a fixed training sample: the "
                  "share of the classes in memory that fit the sample better than its "
                  "given label (0: the label fits best). Now {threshold}.",
    "clean_probability": "Clean probability of the {group} samples of a fixed training "
                         "sample: the softmax over the memory's classes at the given "
                         "label, about 1 / classes when nothing stands out. Now "
                         "{threshold}.",
}


def write_histogram(tag: str, values: np.ndarray, edges: np.ndarray,
                    description: str) -> None:
    """A TensorBoard histogram of `values` over fixed bucket `edges` (tf.summary's
    own picks each histogram's range from its data)."""
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), edges)
    buckets = np.stack([edges[:-1], edges[1:], counts], axis=1).astype(np.float64)
    tf.summary.write(tag, buckets,
                     metadata=histogram_metadata.create_summary_metadata(tag, description))


FRAME_COLOURS = ((128, 128, 128), (230, 25, 25), (25, 204, 25))   # grey, red, green
FRAME_LEGEND = "frame: red = the label is wrong, green = right (ground truth)"


def captioned_grid(images: np.ndarray, captions: Sequence[Sequence[str]],
                   border: Optional[np.ndarray] = None, columns: int = 8,
                   legend: Sequence[str] = (), tile: int = 96) -> np.ndarray:
    """A picture a person reads without the CSV beside it: images [N, H, W,
    3] in [0, 1] as tiles of at least `tile` pixels (nearest-neighbour
    upscaled), each framed by `border` [N] (0/1/2: grey / red / green, see
    `FRAME_COLOURS`) with its caption lines below, and the `legend` lines
    on top. Returns uint8 [height, width, 3].

    >>> picture = captioned_grid(np.zeros((3, 8, 8, 3)), [["given 1", "likely 2"]] * 3,
    ...                          columns=2, legend=["a legend"], tile=32)
    >>> picture.shape[1], picture.dtype
    (72, dtype('uint8'))
    """
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    line = 12
    count, height, width = images.shape[:3]
    scale = max(1, -(-tile // max(height, width)))
    cell_w = max(width * scale + 4, tile + 4)
    lines = max((len(c) for c in captions), default=0)
    cell_h = height * scale + 4 + lines * line + 4
    rows = -(-count // columns)
    top = len(legend) * line + (4 if legend else 0)
    picture = Image.new("RGB", (columns * cell_w, top + rows * cell_h), "white")
    draw = ImageDraw.Draw(picture)
    for i, text in enumerate(legend):
        draw.text((2, 2 + i * line), text, fill="black", font=font)
    pixels = (np.clip(images, 0, 1) * 255).astype(np.uint8)
    frames = np.zeros(count, int) if border is None else np.asarray(border)
    for i in range(count):
        x, y = (i % columns) * cell_w, top + (i // columns) * cell_h
        draw.rectangle([x + 1, y + 1, x + width * scale + 2, y + height * scale + 2],
                       fill=FRAME_COLOURS[int(frames[i])])
        tile_image = Image.fromarray(pixels[i]).resize((width * scale, height * scale),
                                                       Image.NEAREST)
        picture.paste(tile_image, (x + 2, y + 2))
        for j, text in enumerate(captions[i]):
            draw.text((x + 2, y + height * scale + 5 + j * line),
                      _fitted(draw, text, font, cell_w - 4), fill="black", font=font)
    return np.asarray(picture)


def _fitted(draw, text: str, font, width: int) -> str:
    """`text`, cut and ended with "..." where it is wider than `width`
    pixels (a long class name), so it never runs into the next tile."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


class CleanProbabilityMonitor(keras.callbacks.Callback):
    """At every epoch end, scores a fixed set of training samples against the memory.

    Writes a histogram of their clean probabilities (split by ground truth
    when known: `is_noisy` not None) and a grid of the samples the
    selector's current rule (its threshold; `select_by_rank` for
    `noise_rate="auto"`) has rejected most often so far, framed by the ground
    truth when known. Reads the memory; changes nothing.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray,
                 is_noisy: Optional[np.ndarray], log_dir: str, shown: int = 16,
                 class_names: Optional[Sequence[str]] = None):
        super().__init__()
        self.images, self.labels = np.asarray(images), np.asarray(labels)
        self.class_names = class_names   # captions name the classes where given
        self.is_noisy = None if is_noisy is None else np.asarray(is_noisy, bool)
        self.writer = tf.summary.create_file_writer(str(Path(log_dir) / "prism"))
        self.rejections = np.zeros(len(labels), int)
        self.shown = shown

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        model = self.model
        z = embed(model, self.images)
        p_clean, label_rank = (t.numpy() for t in model.label_scores(z, self.labels))
        threshold_text = "no threshold yet"
        if model.selector.noise_rate == AUTO:   # auto's own rule, by label rank
            rejected, threshold = (t.numpy() for t in model.selector.select_by_rank(label_rank))
            rejected = ~rejected
            threshold_text = f"auto drops label ranks above {float(threshold):.3g}"
        elif int(model.selector.window_count.numpy()):
            threshold = float(model.selector.window_mean())
            rejected = p_clean <= threshold
            threshold_text = f"the selector drops clean probabilities up to {threshold:.3g}"
        else:  # no threshold yet: what plain top-R would remove (nothing at rate 0)
            rejected = np.zeros(len(p_clean), bool)
            rejected[np.argsort(p_clean, kind="stable")[
                :int(model.selector.noise_rate * len(p_clean))]] = True
        self.rejections += rejected
        order = np.argsort(-self.rejections, kind="stable")[:self.shown]
        step = int(model.optimizer.iterations.numpy())
        # One range per quantity for every histogram of it, so the clean and
        # the noisy samples' can be laid over each other: the label rank on
        # [0, 1], the clean probability (near 1 / classes, not near 1) on
        # [0, its largest value].
        views = {"label_rank": (label_rank, np.linspace(0.0, 1.0, 21)),
                 "clean_probability": (p_clean, np.linspace(
                     0.0, max(float(p_clean.max()), 1e-6), 21))}
        groups = {"all": np.ones(len(p_clean), bool)}
        if self.is_noisy is not None and self.is_noisy.any():
            groups.update(noisy=self.is_noisy, clean=~self.is_noisy)
        with self.writer.as_default(step=step):
            for quantity, (values, edges) in views.items():
                for group, members in groups.items():
                    write_histogram(f"{quantity}/{group}", values[members], edges,
                                    HISTOGRAM_DESCRIPTIONS[quantity].format(
                                        group=group, threshold=threshold_text))
            border = None if self.is_noisy is None else np.where(self.is_noisy[order], 1, 2)
            likely = self._nearest_class(z[order])
            captions = [[f"given {self._name(label)}",
                         f"-> {'-' if best < 0 else self._name(best)}", f"rejected {count}x"]
                        for label, best, count in zip(self.labels[order], likely,
                                                      self.rejections[order])]
            legend = ["most often rejected so far: given label -> the memory's nearest",
                      "class centre, times below the selector's threshold",
                      FRAME_LEGEND if border is not None else "frame: grey (no ground truth)"]
            picture = captioned_grid(displayable(tf.gather(self.images, order)).numpy(),
                                     captions, border, legend=legend)
            tf.summary.image("most_often_rejected", picture[None], step=step,
                             description="The training samples the selector rejected most "
                             "often so far, with their given label and the class whose "
                             "memory centre is nearest; red / green frames: the label is "
                             "wrong / right by the ground truth.")
        self.writer.flush()


    def _name(self, label: int) -> str:
        return str(label) if self.class_names is None else f"{label} {self.class_names[label]}"

    def _nearest_class(self, z: np.ndarray) -> np.ndarray:
        """The class of the nearest memory class centre per row (-1 with an
        empty memory)."""
        centers, counts = (t.numpy() for t in self.model.memory_bank.class_centers())
        if not counts.any():
            return np.full(len(z), -1)
        similarity = np.where(counts[None] > 0, z @ centers.T, -np.inf)
        return similarity.argmax(axis=1)


class RetrievalExamples(keras.callbacks.Callback):
    """Grids of queries and their top-5 neighbours, and the embedding projector.

    Every epoch end: a few evaluation queries (first column) with their five
    nearest neighbours, framed green for the same label, red otherwise. At
    the end of training: the evaluation embeddings and, with
    `training_sample` (images, given labels, is_noisy or None), those of a
    training sample, a `metadata.tsv` of each row's split, label and whether
    the label is wrong (`yes` / `no` by the ground truth, `unknown`, `-` for
    evaluation rows) and a sprite of thumbnails for TensorBoard's projector.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, log_dir: str,
                 queries: int = 6, thumbnail: int = 32,
                 training_sample: Optional[tuple] = None):
        super().__init__()
        self.images, self.labels = images, np.asarray(labels)
        self.log_dir = Path(log_dir)
        self.writer = tf.summary.create_file_writer(str(self.log_dir / "retrieval"))
        self.queries, self.thumbnail = queries, thumbnail
        self.training_sample = training_sample

    def _embed(self) -> np.ndarray:
        return embed(self.model, self.images)

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        z = self._embed()
        queries = np.linspace(0, len(z) - 1, self.queries).astype(int)
        similarity = z[queries] @ z.T
        similarity[np.arange(self.queries), queries] = -np.inf
        neighbours = np.argsort(-similarity, axis=1, kind="stable")[:, :5]
        columns = np.concatenate([queries[:, None], neighbours], axis=1)
        border = np.where(self.labels[columns] == self.labels[queries][:, None], 2, 1)
        border[:, 0] = 0
        grid = image_grid(tf.reshape(displayable(tf.gather(self.images, columns.reshape(-1))),
                                     [self.queries, 6, *self.images.shape[1:3], 3]), border)
        step = int(self.model.optimizer.iterations.numpy())
        with self.writer.as_default(step=step):
            tf.summary.image("queries_and_top5", grid, step=step)
        self.writer.flush()

    def on_train_end(self, logs=None) -> None:
        # In the `retrieval` run, which has event files: TensorBoard's projector
        # only looks in runs, so a folder of its own stayed invisible.
        images, embeddings = [self.images], [self._embed()]
        metadata = {"split": ["test"] * len(self.labels), "label": list(self.labels),
                    "wrong_label": ["-"] * len(self.labels)}
        if self.training_sample is not None:
            train_images, train_labels, is_noisy = self.training_sample
            images.append(train_images)
            embeddings.append(embed(self.model, train_images))
            metadata["split"] += ["train"] * len(train_labels)
            metadata["label"] += list(train_labels)
            metadata["wrong_label"] += (["unknown"] * len(train_labels) if is_noisy is None
                                        else ["yes" if n else "no" for n in is_noisy])
        thumbnails = displayable(tf.image.resize(np.concatenate(images), [self.thumbnail] * 2))
        write_projector(self.log_dir / "retrieval", np.concatenate(embeddings), metadata,
                        thumbnails.numpy())


def write_projector(log_dir: Path, embeddings: np.ndarray, metadata: Dict[str, Sequence],
                    thumbnails: np.ndarray) -> None:
    """Embeddings, their metadata ({column: one value per row}; a header row
    names the columns) and a sprite in the layout TensorBoard's projector reads."""
    log_dir.mkdir(parents=True, exist_ok=True)
    rows = zip(*metadata.values())
    write_atomically(log_dir / "metadata.tsv", "\t".join(metadata) + "\n" + "".join(
        "\t".join(str(value) for value in row) + "\n" for row in rows))
    side = int(np.ceil(np.sqrt(len(thumbnails))))
    size = thumbnails.shape[1]
    sprite = np.ones((side * side, size, size, 3), np.float32)
    sprite[:len(thumbnails)] = thumbnails
    sprite = sprite.reshape(side, side, size, size, 3).transpose(0, 2, 1, 3, 4)
    png = tf.io.encode_png(tf.cast(sprite.reshape(side * size, side * size, 3) * 255, tf.uint8))
    write_atomically(log_dir / "sprite.png", png.numpy())
    tf.train.Checkpoint(embedding=tf.Variable(embeddings)).save(str(log_dir / "embedding.ckpt"))
    config = projector.ProjectorConfig()
    view = config.embeddings.add()
    view.tensor_name = PROJECTOR_TENSOR
    view.metadata_path = "metadata.tsv"
    view.sprite.image_path = "sprite.png"
    view.sprite.single_image_dim.extend([size, size])
    projector.visualize_embeddings(str(log_dir), config)
