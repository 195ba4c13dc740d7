"""Exports, loaded the way TF Serving loads them (a TF1 session and its saver)."""

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from prism_tf import MemoryBank, PrismModel, PrismSelector, compat
from prism_tf.data.pipeline import Preprocessing
from prism_tf.encoders import small_cnn
from prism_tf.export import (CONTRACT_FILE, TFLITE_FILE, WARMUP_FILE, export_saved_model,
                             preprocessing_from_contract, probe_images)
from prism_tf.search import GalleryIndex
from tests import serving

ROOT = Path(__file__).resolve().parents[1]
PRE = Preprocessing(image_size=16, channels=3, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
QUIET = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
# Where `make` puts the legacy stack (TF 2.15); CI sets PRISM_REQUIRE_LEGACY_RUNTIME=1
# so that the cross-version test cannot be skipped there.
LEGACY_PYTHON = Path(os.environ.get("PRISM_LEGACY_PYTHON", ROOT / ".venv-legacy/bin/python"))


@pytest.fixture(scope="module")
def model():
    return PrismModel(small_cnn((16, 16, 3), 8), MemoryBank(32, 8, 4), PrismSelector(0.5))


@pytest.fixture(scope="module")
def gallery(model):
    """A gallery of 20 random images in shards of 7 rows: the third shard is short."""
    pixels = np.random.default_rng(2).normal(size=(20, 16, 16, 3)).astype(np.float32)
    return GalleryIndex(model.predict(pixels, verbose=0), np.arange(20) % 4,
                        [f"gallery/{i}.png" for i in range(20)], shard_rows=7,
                        source="test gallery",
                        probe=model.predict(probe_images(PRE), verbose=0)[0])


@pytest.fixture(scope="module")
def exported(model, gallery, tmp_path_factory):
    """Every signature: the embeddings and the search over `gallery` (k = 5)."""
    export_dir = tmp_path_factory.mktemp("export")
    path = export_saved_model(model.encoder, str(export_dir), PRE, index=gallery, search_k=5)
    return model, export_dir, path


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Three PNG files, their preprocessed pixels and their file bytes."""
    folder = tmp_path_factory.mktemp("images")
    pixels = np.random.default_rng(0).integers(0, 255, (3, 20, 18, 3), dtype=np.uint8)
    paths = []
    for i, p in enumerate(pixels):
        paths.append(folder / f"image_{i}.png")
        paths[-1].write_bytes(tf.io.encode_png(p).numpy())
    preprocessed = np.stack([PRE.eval_view(tf.constant(p)).numpy() for p in pixels])
    encoded = np.array([p.read_bytes() for p in paths], dtype=object)
    return paths, preprocessed, encoded


def _cli(name):
    return os.path.join(os.path.dirname(sys.executable), name)


def test_versions_are_numbered_and_never_overwritten(exported):
    model, export_dir, path = exported
    assert path == export_dir / "1" and (path / "saved_model.pb").exists()
    assert not [p for p in export_dir.iterdir() if p.name.startswith(".")]
    second = export_saved_model(model.encoder, str(export_dir), PRE)
    assert second.name == "2"
    with pytest.raises(FileExistsError, match="never overwritten"):
        export_saved_model(model.encoder, str(export_dir), PRE, version=1)


def test_a_version_below_1_is_refused_and_a_killed_exports_folder_is_cleared(exported,
                                                                             tmp_path):
    model, _, _ = exported
    for version in (-1, 0):
        with pytest.raises(ValueError, match=f"export version {version}: expected an integer"):
            export_saved_model(model.encoder, str(tmp_path), PRE, version=version)
    assert list(tmp_path.iterdir()) == []
    # What an export killed mid-write leaves (its process gone), and one
    # still being written by a live process (this one), which stays.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (tmp_path / f".1.{dead}.tmp" / "variables").mkdir(parents=True)
    (tmp_path / f".7.{os.getpid()}.tmp").mkdir()
    path = export_saved_model(model.encoder, str(tmp_path), PRE)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["1", f".7.{os.getpid()}.tmp"])
    assert (path / "saved_model.pb").is_file()


@pytest.mark.parametrize("value,match", [(np.nan, "images must be finite"),
                                         (np.inf, "images must be finite"),
                                         (1e30, "cannot be normalised")])
def test_the_float_signature_refuses_what_it_cannot_embed(exported, value, match):
    _, _, path = exported
    images = np.full((2, 16, 16, 3), 0.1, np.float32)
    images[1, 3, 4, 0] = value if value != 1e30 else 0.1
    if value == 1e30:
        images[1] = value
    with serving.tf1_loaded(path) as predict:
        with pytest.raises(tf.errors.InvalidArgumentError, match=match):
            predict("serving_default", {"images": images})
        # The server keeps answering good requests.
        assert np.isfinite(predict("serving_default", {"images": images[:1]})).all()


def _declaring(height: int, width: int) -> bytes:
    """A small PNG whose header is patched to declare height x width: the
    size check must refuse it before anything decodes it."""
    png = bytearray(tf.io.encode_png(np.zeros((4, 4, 3), np.uint8)).numpy())
    png[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    return bytes(png)


@pytest.mark.parametrize("encoded,match", [
    (lambda: tf.io.encode_png(np.zeros((1, 400_000, 3), np.uint8)).numpy(),
     "sides differ by more than 20 times"),
    (lambda: _declaring(9_000, 9_000), "declares more than 64,000,000 pixels"),
    (lambda: b"RIFF\x00\x00\x00\x00WEBPVP8 ", "not a JPEG, PNG, GIF or BMP image"),
])
def test_embed_encoded_refuses_what_it_should_not_decode(exported, images, encoded, match):
    # A 1.2 KB PNG of 1 x 400,000 pixels took 7.55 GB and 18 s before.
    _, _, path = exported
    refused = np.array([encoded()], object)
    with serving.tf1_loaded(path) as predict:
        with pytest.raises(tf.errors.InvalidArgumentError, match=match):
            predict("embed_encoded", {"encoded_images": refused})
        assert predict("embed_encoded", {"encoded_images": images[2][:1]}).shape == (1, 8)


def test_the_tf1_loader_serves_both_signatures_like_keras(exported, images):
    model, _, path = exported
    _, preprocessed, encoded = images
    expected = model.predict(preprocessed, verbose=0)
    with serving.tf1_loaded(path) as predict:
        np.testing.assert_allclose(predict("serving_default", {"images": preprocessed}),
                                   expected, atol=1e-5)
        np.testing.assert_allclose(predict("embed_encoded", {"encoded_images": encoded}),
                                   expected, atol=1e-5)
        with pytest.raises(tf.errors.InvalidArgumentError):
            predict("embed_encoded", {"encoded_images": np.array([b"not an image"], object)})


def test_the_tf1_loader_searches_the_gallery_like_the_index(exported, gallery, images):
    model, _, path = exported
    _, preprocessed, encoded = images
    expected = gallery.search(model.predict(preprocessed, verbose=0), k=5)
    with serving.tf1_loaded(path) as predict:
        for signature, inputs in (("search", {"images": preprocessed}),
                                  ("search_encoded", {"encoded_images": encoded})):
            found = predict(signature, inputs, output=None)
            np.testing.assert_array_equal(found["rows"], expected.rows)
            np.testing.assert_array_equal(found["labels"], expected.labels)
            np.testing.assert_array_equal(found["paths"].astype(str), expected.paths)
            np.testing.assert_allclose(found["scores"], expected.scores, atol=1e-5)
            # Best first, across the shards of 7 rows.
            assert (np.diff(found["scores"], axis=1) <= 1e-6).all()
        with pytest.raises(tf.errors.InvalidArgumentError, match="images must be finite"):
            predict("search", {"images": np.full_like(preprocessed, np.nan)}, output="rows")


def test_the_index_refuses_what_it_cannot_search(gallery):
    queries = gallery.embeddings[:2].copy()
    with pytest.raises(ValueError, match="k=21: expected 1 to the gallery's 20 rows"):
        gallery.search(queries, k=21)
    with pytest.raises(ValueError, match=r"expected \[Q, 8\]"):
        gallery.search(queries[:, :4])
    for bad in (np.nan, 0.0):
        queries[1] = bad
        with pytest.raises(ValueError, match="finite with a non-zero length"):
            gallery.search(queries)
    with pytest.raises(ValueError, match="1 gallery embeddings are not finite"):
        GalleryIndex(np.where(np.arange(20)[:, None] == 3, np.nan, gallery.embeddings),
                     gallery.labels)


def test_an_index_of_another_model_or_width_is_refused(model, gallery, tmp_path):
    # Other weights for certain: Keras 2's unseeded initializers repeat
    # themselves under a global seed, so a second small_cnn may equal the first.
    other = small_cnn((16, 16, 3), 8)
    rng = np.random.default_rng(5)
    other.set_weights([w + rng.normal(0.0, 0.5, w.shape).astype(w.dtype)
                       for w in model.encoder.get_weights()])
    with pytest.raises(ValueError, match="embedded by another model"):
        export_saved_model(other, str(tmp_path), PRE, index=gallery)
    narrow = GalleryIndex(gallery.embeddings[:, :4], gallery.labels, source="narrow")
    with pytest.raises(ValueError, match="4-dimensional embeddings; this encoder's are 8"):
        export_saved_model(model.encoder, str(tmp_path), PRE, index=narrow)
    with pytest.raises(ValueError, match="search_k=0"):
        export_saved_model(model.encoder, str(tmp_path), PRE, index=gallery, search_k=0)
    assert list(tmp_path.iterdir()) == []
    # k above the gallery's rows answers every row.
    path = export_saved_model(model.encoder, str(tmp_path), PRE, index=gallery, search_k=50)
    contract = json.loads((path / "assets.extra" / CONTRACT_FILE).read_text())
    assert contract["search"]["gallery"]["k"] == 20
    assert contract["search_encoded"]["outputs"]["paths"]["shape"] == [-1, 20]


@pytest.mark.parametrize("signature", ["serving_default", "embed_encoded", "search_encoded"])
def test_saved_model_cli_run_answers(exported, gallery, images, tmp_path, signature):
    model, _, path = exported
    _, preprocessed, encoded = images
    if signature == "serving_default":
        np.save(tmp_path / "x.npy", preprocessed)
        argument = "images=" + str(tmp_path / "x.npy")
    else:
        # Fixed-width bytes need no pickle; PNG files never end in NUL bytes.
        np.save(tmp_path / "x.npy", encoded.astype(bytes))
        argument = "encoded_images=" + str(tmp_path / "x.npy")
    result = subprocess.run(
        [_cli("saved_model_cli"), "run", "--dir", str(path), "--tag_set", "serve",
         "--signature_def", signature, "--inputs", argument, "--outdir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, env=QUIET)
    assert result.returncode == 0, result.stderr[-2000:]
    embeddings = model.predict(preprocessed, verbose=0)
    if signature == "search_encoded":
        expected = gallery.search(embeddings, k=5)
        np.testing.assert_array_equal(np.load(tmp_path / "out" / "rows.npy"), expected.rows)
        np.testing.assert_array_equal(np.load(tmp_path / "out" / "labels.npy"), expected.labels)
        np.testing.assert_allclose(np.load(tmp_path / "out" / "scores.npy"), expected.scores,
                                   atol=1e-5)
    else:
        np.testing.assert_allclose(np.load(tmp_path / "out" / "embeddings.npy"), embeddings,
                                   atol=1e-5)


def test_saved_model_cli_shows_both_signatures(exported):
    _, _, path = exported
    result = subprocess.run([_cli("saved_model_cli"), "show", "--dir", str(path), "--all"],
                            capture_output=True, text=True, timeout=300, env=QUIET)
    assert result.returncode == 0, result.stderr[-2000:]
    for signature in ("serving_default", "embed_encoded", "search", "search_encoded"):
        assert f"signature_def['{signature}']" in result.stdout
    assert "(-1, 16, 16, 3)" in result.stdout and "embeddings" in result.stdout


def test_the_tflite_model_embeds_as_the_float_signature(exported, images, tmp_path):
    model, _, _ = exported
    _, preprocessed, _ = images
    path = export_saved_model(model.encoder, str(tmp_path / "models"), PRE, tflite=True)
    interpreter = tf.lite.Interpreter(model_path=str(path / TFLITE_FILE))
    embed = interpreter.get_signature_runner("serving_default")
    expected = model.predict(preprocessed, verbose=0)
    np.testing.assert_allclose(embed(images=preprocessed)["embeddings"], expected, atol=1e-5)
    # The version still serves as TF Serving loads it, the extra file beside it.
    with serving.tf1_loaded(path) as predict:
        np.testing.assert_allclose(predict("serving_default", {"images": preprocessed}),
                                   expected, atol=1e-5)
    # TFLite drops Assert: a row the SavedModel refuses comes back as NaN,
    # the others as they are.
    broken = preprocessed.copy()
    broken[0, 0, 0, 0], broken[1] = np.nan, 1e30
    embeddings = embed(images=broken)["embeddings"]
    assert np.isnan(embeddings[:2]).all()
    np.testing.assert_allclose(embeddings[2], expected[2], atol=1e-5)


def test_a_fresh_tf2_process_loads_it_too(exported, images, tmp_path):
    model, _, path = exported
    _, preprocessed, _ = images
    np.save(tmp_path / "images.npy", preprocessed)
    script = textwrap.dedent(f"""
        import numpy as np, tensorflow as tf
        loaded = tf.saved_model.load({str(path)!r})
        images = tf.constant(np.load({str(tmp_path / 'images.npy')!r}))
        np.save({str(tmp_path / 'a.npy')!r},
                loaded.signatures["serving_default"](images=images)["embeddings"].numpy())
        """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=QUIET, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "a.npy"), model.predict(preprocessed, verbose=0),
                               atol=1e-5)


def test_the_contract_says_how_to_preprocess(exported, images):
    _, _, path = exported
    contract = json.loads((path / "assets.extra" / CONTRACT_FILE).read_text())
    assert contract["preprocessing"]["image_size"] == 16
    assert contract["preprocessing"]["channels"] == 3
    assert contract["preprocessing"]["mean"] == [0.5] * 3
    assert contract["preprocessing"]["std"] == [0.25] * 3
    assert contract["serving_default"]["inputs"]["images"]["shape"] == [-1, 16, 16, 3]
    assert contract["embed_encoded"]["outputs"]["embeddings"]["shape"] == [-1, 8]
    assert contract["search"]["inputs"]["images"]["shape"] == [-1, 16, 16, 3]
    assert contract["search_encoded"]["outputs"]["rows"]["shape"] == [-1, 5]
    assert contract["search"]["gallery"] == {
        "rows": 20, "dim": 8, "source": "test gallery", "k": 5, "shard_rows": 7,
        "search": "exact, by dot product"}
    rebuilt = preprocessing_from_contract(contract)
    pixels = np.random.default_rng(1).integers(0, 255, (23, 19, 3), dtype=np.uint8)
    np.testing.assert_array_equal(rebuilt.eval_view(pixels).numpy(),
                                  PRE.eval_view(pixels).numpy())


def test_warmup_records_parse_and_answer_through_the_tf1_session(exported):
    from tensorflow_serving.apis import prediction_log_pb2

    model, _, path = exported
    records = list(tf.data.TFRecordDataset(str(path / "assets.extra" / WARMUP_FILE)))
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in records]
    assert sorted(log.predict_log.request.model_spec.signature_name for log in logs) == [
        "embed_encoded", "search", "search_encoded", "serving_default"]
    with serving.tf1_loaded(path) as predict:
        answers = {}
        for log in logs:
            request = log.predict_log.request
            signature = request.model_spec.signature_name
            answers[signature] = predict(signature, serving.inputs_from_grpc(request),
                                         "scores" if "search" in signature else "embeddings")
    for signature, answer in answers.items():
        assert answer.shape == ((1, 5) if "search" in signature else (1, 8))
        assert np.isfinite(answer).all()
    # Each pair is the same mid-grey image, once as floats and once as a PNG.
    np.testing.assert_allclose(answers["serving_default"], answers["embed_encoded"], atol=1e-5)
    np.testing.assert_allclose(answers["search"], answers["search_encoded"], atol=1e-5)


def test_an_export_from_this_stack_serves_in_the_legacy_runtime(exported, gallery, images,
                                                                tmp_path):
    if not compat.KERAS_3:
        pytest.skip("this is the legacy stack; the primary suite runs this test")
    if not LEGACY_PYTHON.exists():
        if os.environ.get("PRISM_REQUIRE_LEGACY_RUNTIME"):
            pytest.fail(f"no legacy runtime at {LEGACY_PYTHON}")
        pytest.skip(f"no legacy runtime at {LEGACY_PYTHON} (make .venv-legacy/.installed)")
    model, _, path = exported
    _, preprocessed, encoded = images
    np.save(tmp_path / "images.npy", preprocessed)
    np.save(tmp_path / "encoded.npy", encoded.astype(bytes))
    script = textwrap.dedent(f"""
        import numpy as np, tensorflow as tf
        assert tf.__version__.startswith("2.15"), tf.__version__
        from tests import serving
        with serving.tf1_loaded({str(path)!r}) as predict:
            a = predict("serving_default", {{"images": np.load({str(tmp_path / 'images.npy')!r})}})
            b = predict("embed_encoded",
                        {{"encoded_images": np.load({str(tmp_path / 'encoded.npy')!r})}})
            rows = predict("search_encoded",
                           {{"encoded_images": np.load({str(tmp_path / 'encoded.npy')!r})}},
                           "rows")
        np.save({str(tmp_path / 'a.npy')!r}, a); np.save({str(tmp_path / 'b.npy')!r}, b)
        np.save({str(tmp_path / 'rows.npy')!r}, rows)
        """)
    result = subprocess.run([str(LEGACY_PYTHON), "-c", script], capture_output=True, text=True,
                            env=QUIET, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    expected = model.predict(preprocessed, verbose=0)
    np.testing.assert_allclose(np.load(tmp_path / "a.npy"), expected, atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "b.npy"), expected, atol=1e-5)
    np.testing.assert_array_equal(np.load(tmp_path / "rows.npy"),
                                  gallery.search(expected, k=5).rows)


def _serve_request(*args):
    return subprocess.run([sys.executable, "-m", "pipelines.serve_request", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=QUIET)


@pytest.mark.parametrize("signature", ["embed_encoded", "serving_default"])
def test_the_clients_rest_request_is_what_the_export_answers(exported, images, signature):
    model, _, path = exported
    paths, preprocessed, _ = images
    result = _serve_request("--images", *map(str, paths), "--format=rest",
                            f"--signature={signature}", f"--contract={path}")
    assert result.returncode == 0, result.stderr[-2000:]
    body = json.loads(result.stdout)
    assert body["signature_name"] == signature and len(body["instances"]) == 3
    with serving.tf1_loaded(path) as predict:
        answer = predict(signature, serving.inputs_from_rest(body))
    np.testing.assert_allclose(answer, model.predict(preprocessed, verbose=0), atol=1e-5)


@pytest.mark.parametrize("api", ["rest", "grpc"])
def test_the_client_gets_embeddings_from_a_server(exported, images, api):
    model, _, path = exported
    paths, preprocessed, _ = images
    start = serving.rest_server if api == "rest" else serving.grpc_server
    with serving.tf1_loaded(path) as predict, start(predict, "prism") as address:
        result = _serve_request("--images", *map(str, paths), f"--format={api}",
                                f"--server={address}", "--model_name=prism")
    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout)
    assert answer["shape"] == [3, 8]
    np.testing.assert_allclose(answer["embeddings"], model.predict(preprocessed, verbose=0),
                               atol=1e-5)


def test_the_clients_grpc_request_is_what_the_export_answers(exported, images):
    from google.protobuf import text_format
    from tensorflow_serving.apis import predict_pb2

    model, _, path = exported
    paths, preprocessed, _ = images
    result = _serve_request("--images", *map(str, paths), "--format=grpc")
    assert result.returncode == 0, result.stderr[-2000:]
    request = text_format.Parse(result.stdout, predict_pb2.PredictRequest())
    assert request.model_spec.name == "prism"
    with serving.tf1_loaded(path) as predict:
        answer = predict(request.model_spec.signature_name, serving.inputs_from_grpc(request))
    np.testing.assert_allclose(answer, model.predict(preprocessed, verbose=0), atol=1e-5)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _contract_file(folder: Path) -> Path:
    """A preprocessing.json for PRE in `folder`."""
    from prism_tf.export import serving_contract

    (folder / "preprocessing.json").write_text(json.dumps(serving_contract(PRE, 8)))
    return folder / "preprocessing.json"


@pytest.mark.parametrize("case,expected", [
    ("refused", r"error: cannot reach http://127.0.0.1:\d+/v1/models/prism:predict: "
                r".*Connection refused"),
    ("refused_grpc", r"error: gRPC Predict on 127.0.0.1:\d+ failed: UNAVAILABLE: "),
    ("silent", r"error: no answer from http://127.0.0.1:\d+/v1/models/prism:predict within "
               r"1 s \(--timeout\)"),
    ("http_400", r"error: http://127.0.0.1:\d+/v1/models/prism:predict answered HTTP 400: "
                 r"Expected 'tf.Tensor\(False, shape=\(\), dtype=bool\)' to be true. more"),
    ("ragged", r"error: the server's answer is not 2 embeddings of equal length"),
    ("not_json", r"error: http://127.0.0.1:\d+/v1/models/prism:predict answered, but not "
                 r"with JSON"),
    ("timeout_0", r"error: --timeout=0: expected a positive number of seconds"),
    ("no_channels", r"error: the contract lacks preprocessing key 'channels'"),
    ("bad_image", r"error: .*not_an_image.png: not a JPEG, PNG, GIF or BMP image"),
])
def test_every_client_failure_is_one_line(images, tmp_path, case, expected):
    paths = [str(p) for p in images[0][:2]]
    answers = {"silent": (200, b"{}", 3.0),
               "http_400": (400, json.dumps({"error": "Expected 'tf.Tensor(False, shape=(), "
                                                      "dtype=bool)' to be true.\n more"}).encode(), 0),
               "ragged": (200, json.dumps({"predictions": [[0.6, 0.8], [1.0]]}).encode(), 0),
               "not_json": (200, b"<html>proxy error</html>", 0)}
    flags = ["--images", *paths, "--timeout=1"]
    with contextlib.ExitStack() as stack:
        if case in answers:
            flags.append(f"--server={stack.enter_context(serving.fixed_answer_server(*answers[case]))}")
        elif case == "refused":
            flags.append(f"--server=127.0.0.1:{_free_port()}")
        elif case == "refused_grpc":
            flags += [f"--server=127.0.0.1:{_free_port()}", "--format=grpc"]
        elif case == "timeout_0":
            flags += ["--server=127.0.0.1:1", "--timeout=0"]
        elif case == "no_channels":
            (tmp_path / "contract.json").write_text(json.dumps({"preprocessing": {
                "image_size": 16}}))
            flags += ["--signature=serving_default", f"--contract={tmp_path / 'contract.json'}"]
        elif case == "bad_image":
            (tmp_path / "not_an_image.png").write_bytes(b"these are not pixels")
            flags = ["--images", str(tmp_path / "not_an_image.png"),
                     "--signature=serving_default", f"--contract={_contract_file(tmp_path)}"]
        result = _serve_request(*flags)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 1 and len(lines) == 1, result.stderr[-3000:]
    assert re.fullmatch(expected + ".*", lines[0]), lines[0]
    assert "Traceback" not in result.stderr


def test_the_client_refuses_serving_default_without_a_contract(images):
    paths, _, _ = images
    result = _serve_request("--images", str(paths[0]), "--signature=serving_default")
    assert result.returncode != 0 and "needs --contract" in result.stderr
    result = _serve_request("--images", "missing.png")
    assert result.returncode != 0 and "no image file missing.png" in result.stderr
