"""Export an encoder as a versioned SavedModel for TF Serving.

Two signatures, both returning `embeddings` [N, D], L2-normalised float32:
- `serving_default`: `images` [N, S, S, C] float32, already preprocessed
  as in evaluation (see `serving_contract`).
- `embed_encoded`: `encoded_images` [N] JPEG/PNG/GIF/BMP bytes -> decode,
  evaluation preprocessing (resize, centre crop, normalise). Malformed bytes
  make the call fail with InvalidArgumentError; the server keeps running.

With a gallery index (`prism_tf.search.GalleryIndex`, written by
`prism-tf-index`) two more, the same inputs -> the k nearest gallery rows,
exact, in plain TF ops: `rows` [N, k] int64, `scores` [N, k] float32
(cosine similarity), `labels` [N, k] int64 and `paths` [N, k] string:
- `search`: `images` as `serving_default`;
- `search_encoded`: `encoded_images` as `embed_encoded`.
The gallery is held in variables (graph constants stop at 2 GB), one per
shard of at most `SHARD_ROWS` rows, so a million rows of 512 floats export,
load and serve (2 GB of variables).

`assets.extra/` carries what a client and the server need beside the graph:
`preprocessing.json` (the input contract of the signatures) and
`tf_serving_warmup_requests` (one PredictionLog per signature, which TF
Serving replays at load so that the first real request is not slow).

With `tflite=True` the version also holds `model.tflite`: the float
signature (`serving_default`) for TensorFlow Lite / LiteRT. The bytes
signature stays SavedModel-only (TFLite has no image-decoding ops), and the
float signature's refusals (non-finite pixels, no finite non-zero norm)
become values there (TFLite drops `Assert`): such a row's embedding is NaN,
which a mobile caller checks for.

A version is written to a hidden temporary folder beside it and renamed into
`export_dir/<version>` only when complete, so TF Serving, which watches
`export_dir`, never sees a half-written version; what a killed export left
is deleted by the next one.
"""

import base64
import json
import shutil
from pathlib import Path
from typing import Dict, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from prism_tf import compat
from prism_tf.files import remove_stale_temporaries, temporary_name
from prism_tf.data.pipeline import Preprocessing
from prism_tf.search import GalleryIndex, top_k_rows

CONTRACT_FILE = "preprocessing.json"
TFLITE_FILE = "model.tflite"
WARMUP_FILE = "tf_serving_warmup_requests"
# Embeddings of one image by one model differ by float rounding between a
# checkpoint and its export, CPU and GPU, eager and XLA: far less than this.
PROBE_ATOL = 1e-3


class _Embedder(tf.Module):
    def __init__(self, encoder: keras.Model, preprocessing: Preprocessing,
                 index: Optional[GalleryIndex] = None, search_k: int = 10):
        super().__init__()
        self.encoder = encoder
        # The TF1 loader (TF Serving, `saved_model_cli run`) restores only the
        # tf.Variables named in the object graph; Keras 3 tracks its own
        # Variable wrappers, so the functions' captures were left
        # uninitialised there. Tracking the tf.Variables themselves fixes that.
        self.encoder_variables = [compat.tf_variable(v) for v in encoder.variables]
        self.preprocessing = preprocessing
        size, channels = preprocessing.image_size, preprocessing.channels
        self.embed = tf.function(self._embed, input_signature=[
            tf.TensorSpec([None, size, size, channels], tf.float32, name="images")])
        self.embed_encoded = tf.function(self._embed_encoded, input_signature=[
            tf.TensorSpec([None], tf.string, name="encoded_images")])
        if index is not None:
            # Variables, not constants: a graph constant is capped at 2 GB.
            # One per shard (`prism_tf.search`), each restored on its own.
            self.gallery_shards = [tf.Variable(shard, trainable=False, name=f"gallery_{i}")
                                   for i, shard in enumerate(index.shards())]
            self.gallery_labels = tf.Variable(index.labels, trainable=False,
                                              name="gallery_labels")
            self.gallery_paths = tf.Variable(index.paths.astype(object), trainable=False,
                                             dtype=tf.string, name="gallery_paths")
            self.search_k = min(search_k, len(index))
            self.search = tf.function(self._search, input_signature=[
                tf.TensorSpec([None, size, size, channels], tf.float32, name="images")])
            self.search_encoded = tf.function(self._search_encoded, input_signature=[
                tf.TensorSpec([None], tf.string, name="encoded_images")])

    def _embed(self, images):
        # A NaN pixel would come back as a NaN embedding, and features whose
        # squared norm overflows (inputs of 1e30) as an all-zero "unit" one:
        # both are refused (InvalidArgumentError; TF Serving answers 400).
        tf.debugging.assert_all_finite(images, "images must be finite numbers")
        features = tf.cast(self.encoder(images, training=False), tf.float32)
        squared_norm = tf.reduce_sum(tf.square(features), axis=-1)
        tf.debugging.Assert(
            tf.reduce_all(tf.math.is_finite(squared_norm) & (squared_norm > 0.0)),
            ["the encoder's output for these images has no finite, non-zero length, so it "
             "cannot be normalised: are they preprocessed as assets.extra/preprocessing.json "
             "says?"])
        # The same checks as values: TFLite drops Assert, so there a row that
        # cannot be embedded comes back as NaN (a runtime's kernels would
        # otherwise make anything of it; TF 2.15's give finite numbers).
        embeddable = (tf.reduce_all(tf.math.is_finite(images), axis=[1, 2, 3])
                      & tf.math.is_finite(squared_norm) & (squared_norm > 0.0))
        return {"embeddings": tf.where(embeddable[:, None],
                                       features * tf.math.rsqrt(squared_norm)[:, None],
                                       float("nan"))}

    def _embed_encoded(self, encoded_images):
        size, channels = self.preprocessing.image_size, self.preprocessing.channels
        images = tf.map_fn(self.preprocessing.eval_view_of_file, encoded_images,
                           fn_output_signature=tf.TensorSpec([size, size, channels], tf.float32))
        return self._embed(images)

    def _found(self, embeddings):
        scores, rows = top_k_rows(embeddings, self.gallery_shards, self.search_k)
        return {"rows": tf.cast(rows, tf.int64), "scores": scores,
                "labels": tf.gather(self.gallery_labels, rows),
                "paths": tf.gather(self.gallery_paths, rows)}

    def _search(self, images):
        return self._found(self._embed(images)["embeddings"])

    def _search_encoded(self, encoded_images):
        return self._found(self._embed_encoded(encoded_images)["embeddings"])


def serving_contract(preprocessing: Preprocessing, embedding_dim: int,
                     index: Optional[GalleryIndex] = None,
                     search_k: int = 10) -> Dict[str, object]:
    """What a client must know to call the export: `assets.extra/preprocessing.json`
    (with `index`: the `search` signatures too).

    >>> contract = serving_contract(Preprocessing(image_size=32, channels=3), 64)
    >>> contract["serving_default"]["inputs"]["images"]["shape"]
    [-1, 32, 32, 3]
    >>> contract["preprocessing"]["resize_shorter_side_to"]
    37
    """
    size, channels = preprocessing.image_size, preprocessing.channels
    as_list = lambda values: None if values is None else [float(v) for v in values]  # noqa: E731
    images = {"images": {"dtype": "float32", "shape": [-1, size, size, channels],
                         "meaning": "images already preprocessed as above"}}
    encoded = {"encoded_images": {"dtype": "string", "shape": [-1],
                                  "meaning": "JPEG/PNG/GIF/BMP file bytes, any size; "
                                             "the model preprocesses them as above"}}
    embeddings = {"embeddings": {"dtype": "float32", "shape": [-1, embedding_dim],
                                 "meaning": "L2-normalised; compare by dot product"}}
    contract = {
        "preprocessing": {
            "image_size": size,
            "channels": channels,
            "resize_shorter_side_to": int(round(size * preprocessing.eval_resize)),
            "eval_resize": float(preprocessing.eval_resize),
            "crop": f"centre {size} x {size}",
            "value_range": "pixels in [0, 255] are divided by 255, then (x - mean) / std",
            "mean": as_list(preprocessing.mean),
            "std": as_list(preprocessing.std),
        },
        "serving_default": {"inputs": images, "outputs": embeddings},
        "embed_encoded": {"inputs": encoded, "outputs": embeddings},
    }
    if index is not None:
        k = min(search_k, len(index))
        found = {"rows": {"dtype": "int64", "shape": [-1, k],
                          "meaning": "gallery row ids, most similar first"},
                 "scores": {"dtype": "float32", "shape": [-1, k],
                            "meaning": "cosine similarity to the query"},
                 "labels": {"dtype": "int64", "shape": [-1, k],
                            "meaning": "the rows' labels in the gallery"},
                 "paths": {"dtype": "string", "shape": [-1, k],
                           "meaning": "the rows' image files (empty for in-memory images)"}}
        gallery = {"rows": len(index), "dim": index.dim, "source": index.source, "k": k,
                   "shard_rows": index.shard_rows, "search": "exact, by dot product"}
        contract["search"] = {"inputs": images, "outputs": found, "gallery": gallery}
        contract["search_encoded"] = {"inputs": encoded, "outputs": found, "gallery": gallery}
    return contract


def preprocessing_from_contract(contract: Dict[str, object]) -> Preprocessing:
    """The evaluation preprocessing a `serving_contract` describes."""
    spec = contract["preprocessing"]
    optional = lambda values: None if values is None else tuple(values)  # noqa: E731
    return Preprocessing(image_size=spec["image_size"], channels=spec["channels"],
                         eval_resize=spec["eval_resize"], mean=optional(spec["mean"]),
                         std=optional(spec["std"]))


def predict_request(signature: str, inputs: Dict[str, np.ndarray], model_name: str = ""):
    """A TF Serving gRPC `PredictRequest` for `signature` with these inputs."""
    # Imported here: only serving needs the protos.
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def rest_body(signature: str, inputs: Dict[str, np.ndarray]) -> Dict[str, object]:
    """A TF Serving REST `:predict` body (row format); bytes go as {"b64": ...}.

    >>> body = rest_body("embed_encoded", {"encoded_images": np.array([b"ab"], dtype=object)})
    >>> body["instances"]
    [{'encoded_images': {'b64': 'YWI='}}]
    """
    def value(item):
        if isinstance(item, bytes):
            return {"b64": base64.b64encode(item).decode("ascii")}
        return item.tolist()

    count = len(next(iter(inputs.values())))
    return {"signature_name": signature,
            "instances": [{name: value(array[i]) for name, array in inputs.items()}
                          for i in range(count)]}


def _grey(preprocessing: Preprocessing) -> np.ndarray:
    size, channels = preprocessing.image_size, preprocessing.channels
    return np.full([size, size, channels], 128, np.uint8)


def probe_images(preprocessing: Preprocessing) -> np.ndarray:
    """[1, S, S, C]: one fixed image of diagonal stripes over the whole pixel
    range, preprocessed. Its embedding tells models apart: a gallery index
    records it, and an export refuses an index whose probe another encoder
    embedded. (Not a flat grey: a freshly initialised encoder maps an input
    near 0 to near 0, the same for every model.)"""
    size, channels = preprocessing.image_size, preprocessing.channels
    rows, columns, planes = np.meshgrid(np.arange(size), np.arange(size), np.arange(channels),
                                        indexing="ij")
    stripes = ((rows * 37 + columns * 11 + planes * 85) % 256).astype(np.uint8)
    return preprocessing.normalize(stripes).numpy()[None]


def warmup_requests(preprocessing: Preprocessing,
                    search: bool = False) -> Dict[str, Dict[str, np.ndarray]]:
    """One small request per signature (`search`: the search signatures
    too): {signature: {input name: value}}."""
    images = {"images": preprocessing.normalize(_grey(preprocessing)).numpy()[None]}
    encoded = {"encoded_images": np.array([tf.io.encode_png(_grey(preprocessing)).numpy()],
                                          dtype=object)}
    requests = {"serving_default": images, "embed_encoded": encoded}
    if search:
        requests.update(search=images, search_encoded=encoded)
    return requests


def write_warmup_file(path: Path, requests: Dict[str, Dict[str, np.ndarray]]) -> None:
    """Writes TF Serving's warm-up file: a TFRecord of PredictionLog records."""
    from tensorflow_serving.apis import prediction_log_pb2

    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature, inputs in requests.items():
            # No model name: TF Serving replays warm-up records against the
            # model being loaded, whatever name it is served under.
            request = predict_request(signature, inputs)
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def _versions(export_dir: Path) -> Dict[int, Path]:
    """The integer version folders of an export folder, by version."""
    return {int(p.name): p for p in Path(export_dir).glob("*") if p.name.isdigit()}


def next_version(export_dir: Path) -> int:
    """One more than the highest integer version folder (1 if none)."""
    return max(_versions(export_dir), default=0) + 1


def exported_encoder_variables(export_dir: str) -> Tuple[Path, list]:
    """The version folder and the encoder variables of an export this module
    wrote (a version folder, or the export folder: its newest complete
    version), in the exported encoder's `variables` order: what fine-tuning
    starts from."""
    path = Path(export_dir)
    if not (path / "saved_model.pb").is_file():
        complete = [version for version, folder in _versions(path).items()
                    if (folder / "saved_model.pb").is_file()]
        if not complete:
            raise FileNotFoundError(f"{export_dir}: no SavedModel (saved_model.pb) in it "
                                    "or in a numbered version folder")
        path = path / str(max(complete))
    variables = getattr(tf.saved_model.load(str(path)), "encoder_variables", None)
    if variables is None:
        raise ValueError(f"{path}: not an export of prism_tf.export (no encoder_variables)")
    return path, list(variables)


def tflite_model(saved_model_dir: Path) -> bytes:
    """The float signature of an export as a TensorFlow Lite flatbuffer."""
    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(saved_model_dir), signature_keys=["serving_default"])
    return converter.convert()


def export_saved_model(encoder: keras.Model, export_dir: str, preprocessing: Preprocessing,
                       version: Optional[int] = None, tflite: bool = False,
                       index: Optional[GalleryIndex] = None, search_k: int = 10) -> Path:
    """Writes `export_dir/<version>` atomically and returns its path.

    `preprocessing` is the evaluation preprocessing, with `channels` set;
    `tflite` adds `model.tflite` (the float signature); `index` adds the
    `search` signatures over that gallery, answering its `search_k` (at
    most the gallery's rows) nearest rows. Raises FileExistsError, writing
    nothing, if that version exists.
    """
    if index is not None:
        if index.dim != int(encoder.output_shape[-1]):
            raise ValueError(f"the gallery index holds {index.dim}-dimensional embeddings; "
                             f"this encoder's are {int(encoder.output_shape[-1])}: it was "
                             "indexed by another model")
        if search_k < 1:
            raise ValueError(f"search_k={search_k}: expected at least 1 row per query")
        probe = encoder(probe_images(preprocessing), training=False)
        probe = tf.math.l2_normalize(tf.cast(probe, tf.float32), axis=1).numpy()[0]
        if index.probe is not None and not np.allclose(probe, index.probe, atol=PROBE_ATOL):
            raise ValueError(f"the gallery index ({index.source}) was embedded by another "
                             "model: its probe embedding differs from this encoder's by "
                             f"{np.abs(probe - index.probe).max():.3g}; index the gallery "
                             "again with the model being exported")
    if not preprocessing.channels:
        raise ValueError("export_saved_model: preprocessing.channels must be set "
                         "(Preprocessing.for_split gives it)")
    export_dir = Path(export_dir)
    try:
        export_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(f"cannot write to export folder {export_dir}: {error.strerror}") from None
    if version is not None and (not isinstance(version, int) or version < 1):
        raise ValueError(f"export version {version!r}: expected an integer >= 1 (TF Serving "
                         "loads only numbered version folders)")
    version = next_version(export_dir) if version is None else version
    final = export_dir / str(version)
    if final.exists():
        raise FileExistsError(f"{final} exists; versions are never overwritten")
    remove_stale_temporaries(export_dir)
    temporary = temporary_name(final)
    module = _Embedder(encoder, preprocessing, index, search_k)
    signatures = {"serving_default": module.embed, "embed_encoded": module.embed_encoded}
    if index is not None:
        signatures.update(search=module.search, search_encoded=module.search_encoded)
    try:
        tf.saved_model.save(module, str(temporary), signatures=signatures)
        extra = temporary / "assets.extra"
        extra.mkdir()
        contract = serving_contract(preprocessing, int(encoder.output_shape[-1]), index,
                                    search_k)
        (extra / CONTRACT_FILE).write_text(json.dumps(contract, indent=2))
        write_warmup_file(extra / WARMUP_FILE,
                          warmup_requests(preprocessing, search=index is not None))
        if tflite:
            (temporary / TFLITE_FILE).write_bytes(tflite_model(temporary))
        temporary.rename(final)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return final
