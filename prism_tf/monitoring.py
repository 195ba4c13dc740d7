"""TensorBoard views of a PRISM run: clean probabilities, rejected samples,
retrieval examples and an embedding projector (which Keras 3's TensorBoard
callback no longer writes)."""

from pathlib import Path
from typing import Optional

import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins import projector

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


class CleanProbabilityMonitor(keras.callbacks.Callback):
    """At every epoch end, scores a fixed set of training samples against the memory.

    Writes a histogram of their clean probabilities (split by ground truth
    when known: `is_noisy` not None) and a grid of the samples the
    selector's current rule (its threshold; `select_by_rank` for
    `noise_rate="auto"`) has rejected most often so far, framed by the ground
    truth when known. Reads the memory; changes nothing.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray,
                 is_noisy: Optional[np.ndarray], log_dir: str, shown: int = 16):
        super().__init__()
        self.images, self.labels = np.asarray(images), np.asarray(labels)
        self.is_noisy = None if is_noisy is None else np.asarray(is_noisy, bool)
        self.writer = tf.summary.create_file_writer(str(Path(log_dir) / "prism"))
        self.rejections = np.zeros(len(labels), int)
        self.shown = shown

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        model = self.model
        z = embed(model, self.images)
        p_clean, label_rank = (t.numpy() for t in model.label_scores(z, self.labels))
        if model.selector.noise_rate == AUTO:   # auto's own rule, by label rank
            rejected = ~model.selector.select_by_rank(label_rank)[0].numpy()
        elif int(model.selector.window_count.numpy()):
            rejected = p_clean <= float(model.selector.window_mean())
        else:  # no threshold yet: what plain top-R would remove (nothing at rate 0)
            rejected = np.zeros(len(p_clean), bool)
            rejected[np.argsort(p_clean, kind="stable")[
                :int(model.selector.noise_rate * len(p_clean))]] = True
        self.rejections += rejected
        order = np.argsort(-self.rejections, kind="stable")[:self.shown]
        step = int(model.optimizer.iterations.numpy())
        with self.writer.as_default(step=step):
            tf.summary.histogram("clean_probability/all", p_clean)
            if self.is_noisy is not None and self.is_noisy.any():
                tf.summary.histogram("clean_probability/noisy", p_clean[self.is_noisy])
                tf.summary.histogram("clean_probability/clean", p_clean[~self.is_noisy])
            # Red frame: the label really is wrong; green: it is right; grey: unknown.
            shown = displayable(tf.gather(self.images, order))[None]
            border = None if self.is_noisy is None else np.where(self.is_noisy[order], 1, 2)[None]
            tf.summary.image("most_often_rejected", image_grid(shown, border), step=step)
        self.writer.flush()


class RetrievalExamples(keras.callbacks.Callback):
    """Grids of queries and their top-5 neighbours, and the embedding projector.

    Every epoch end: a few evaluation queries (first column) with their five
    nearest neighbours, framed green for the same label, red otherwise. At
    the end of training: the evaluation embeddings, a `metadata.tsv` of
    their labels and a sprite of thumbnails for TensorBoard's projector.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, log_dir: str,
                 queries: int = 6, thumbnail: int = 32):
        super().__init__()
        self.images, self.labels = images, np.asarray(labels)
        self.log_dir = Path(log_dir)
        self.writer = tf.summary.create_file_writer(str(self.log_dir / "retrieval"))
        self.queries, self.thumbnail = queries, thumbnail

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
        write_projector(self.log_dir / "retrieval", self._embed(), self.labels,
                        displayable(tf.image.resize(self.images, [self.thumbnail] * 2)).numpy())


def write_projector(log_dir: Path, embeddings: np.ndarray, labels: np.ndarray,
                    thumbnails: np.ndarray) -> None:
    """Embeddings, label metadata and a sprite in the layout TensorBoard's projector reads."""
    log_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(log_dir / "metadata.tsv", "".join(f"{label}\n" for label in labels))
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
