r"""Ask a TF Serving model for embeddings of image files, over REST or gRPC.

    python -m pipelines.serve_request --images a.jpg b.png --format=rest \
        [--server=localhost:8501] [--model_name=prism] \
        [--signature=embed_encoded | --signature=serving_default --contract=models/prism/1]

`embed_encoded` (the default) sends the files' bytes and the model does the
preprocessing; `serving_default` sends float images preprocessed here, as
the export's `assets.extra/preprocessing.json` (--contract: that file or the
version folder) says. Without --server the request is printed instead of
sent: the REST body as JSON, or the gRPC `PredictRequest` in protobuf text
format. With --server it is sent (REST: POST
`http://SERVER/v1/models/MODEL:predict`; gRPC: `PredictionService.Predict`
on SERVER) and the answer is printed as JSON: {"embeddings": [[...]],
"shape": [N, D]}.
"""

import json
from pathlib import Path
import socket
from typing import Dict, List, Optional
import urllib.error
import urllib.request

from absl import app, flags
import numpy as np
import tensorflow as tf

from . import cli
from prism_tf.data.image_header import refusal_reason
from prism_tf.export import (CONTRACT_FILE, predict_request, preprocessing_from_contract,
                             rest_body)

FLAGS = flags.FLAGS


def _define_flags() -> None:
    # Defined only when run as a program, so tests can import the module.
    flags.DEFINE_list("images", None, "Image files to embed: --images a.jpg b.png "
                      "(or a,b comma-separated).")
    flags.DEFINE_enum("format", "rest", ["rest", "grpc"], "TF Serving API to use.")
    flags.DEFINE_enum("signature", "embed_encoded", ["embed_encoded", "serving_default"],
                      "embed_encoded: send file bytes; serving_default: send float images.")
    flags.DEFINE_string("contract", None, "serving_default: the export's preprocessing.json "
                        "or its version folder.")
    flags.DEFINE_string("server", None, "host:port of tensorflow_model_server "
                        "(REST: --rest_api_port, gRPC: --port); unset: print the request.")
    flags.DEFINE_string("model_name", "prism", "--model_name the server was started with.")
    flags.DEFINE_float("timeout", 30.0, "Seconds to wait for the server.")


class ServerError(Exception):
    """The server could not be reached or gave no usable answer."""


def read_contract(path: str) -> Dict[str, object]:
    """The preprocessing contract from its file or from an export's version folder."""
    path = Path(path)
    if path.is_dir():
        path = path / "assets.extra" / CONTRACT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no preprocessing contract at {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not a preprocessing contract: {error}") from None


def request_inputs(images: List[str], signature: str,
                   contract: Optional[Dict[str, object]] = None) -> Dict[str, np.ndarray]:
    """The named inputs of `signature` for these image files."""
    encoded = []
    for name in images:
        if not Path(name).is_file():
            raise FileNotFoundError(f"no image file {name}")
        encoded.append(Path(name).read_bytes())
    if signature == "embed_encoded":
        return {"encoded_images": np.array(encoded, dtype=object)}
    if contract is None:
        raise ValueError("signature serving_default needs --contract: the float images "
                         "must be preprocessed as the export expects")
    try:
        preprocessing = preprocessing_from_contract(contract)
    except (KeyError, TypeError) as error:
        raise ValueError(f"the contract lacks preprocessing key {error} (expected the "
                         f"export's assets.extra/{CONTRACT_FILE})") from None
    views = []
    for name, data in zip(images, encoded):
        try:
            views.append(preprocessing.eval_view_of_file(data).numpy())
        except tf.errors.InvalidArgumentError as error:
            raise ValueError(f"{name}: {refusal_reason(error)}") from None
    return {"images": np.stack(views)}


def embeddings_from(predictions: object, count: int) -> np.ndarray:
    """The server's `predictions` as embeddings [count, D], or a `ServerError`
    saying why they are not.

    >>> embeddings_from([[0.6, 0.8]], 1)
    array([[0.6, 0.8]], dtype=float32)
    >>> try:
    ...     embeddings_from([[0.6, 0.8], [1.0]], 2)
    ... except ServerError as error:
    ...     print(error)
    the server's answer is not 2 embeddings of equal length
    """
    try:
        embeddings = np.asarray(predictions, np.float32)
    except (ValueError, TypeError):
        embeddings = None
    if embeddings is None or embeddings.ndim != 2 or len(embeddings) != count:
        raise ServerError(f"the server's answer is not {count} embeddings of equal length")
    return embeddings


def send_rest(server: str, model_name: str, body: Dict[str, object], timeout: float) -> object:
    """POSTs a `:predict` body; returns the answer's `predictions`."""
    url = f"http://{server}/v1/models/{model_name}:predict"
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as error:
        # TF Serving says what was wrong in {"error": "..."}.
        text = error.read().decode(errors="replace")
        try:
            text = json.loads(text)["error"]
        except (ValueError, KeyError, TypeError):
            pass
        raise ServerError(f"{url} answered HTTP {error.code}: {cli.one_line(ValueError(text))}"
                          ) from None
    except (TimeoutError, socket.timeout):
        raise ServerError(f"no answer from {url} within {timeout:g} s (--timeout)") from None
    except (urllib.error.URLError, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        raise ServerError(f"cannot reach {url}: {reason}") from None
    except json.JSONDecodeError:
        raise ServerError(f"{url} answered, but not with JSON") from None
    if not isinstance(answer, dict) or "predictions" not in answer:
        raise ServerError(f"{url} answered without predictions")
    return answer["predictions"]


def send_grpc(server: str, request, timeout: float) -> np.ndarray:
    """Calls PredictionService.Predict; returns its `embeddings` output."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    try:
        with grpc.insecure_channel(server) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            response = stub.Predict(request, timeout=timeout)
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise ServerError(f"no answer from {server} within {timeout:g} s (--timeout)"
                              ) from None
        raise ServerError(f"gRPC Predict on {server} failed: {error.code().name}: "
                          f"{cli.one_line(ValueError(error.details()))}") from None
    if "embeddings" not in response.outputs:
        raise ServerError(f"{server} answered without an 'embeddings' output")
    return tf.make_ndarray(response.outputs["embeddings"])


def main(argv):
    # `--images a.jpg b.png`: the names after the first arrive as arguments.
    images = (FLAGS.images or []) + argv[1:]
    if not images:
        raise app.UsageError("--images is required")
    if not FLAGS.timeout > 0:
        raise SystemExit(f"error: --timeout={FLAGS.timeout:g}: expected a positive number "
                         "of seconds")
    try:
        contract = read_contract(FLAGS.contract) if FLAGS.contract else None
        inputs = request_inputs(images, FLAGS.signature, contract)
        if FLAGS.format == "rest":
            body = rest_body(FLAGS.signature, inputs)
            if not FLAGS.server:
                print(json.dumps(body))
                return
            predictions = send_rest(FLAGS.server, FLAGS.model_name, body, FLAGS.timeout)
        else:
            request = predict_request(FLAGS.signature, inputs, FLAGS.model_name)
            if not FLAGS.server:
                print(request)
                return
            predictions = send_grpc(FLAGS.server, request, FLAGS.timeout)
        embeddings = embeddings_from(predictions, len(images))
    except (OSError, ValueError, ServerError) as error:
        raise SystemExit(f"error: {error}")
    print(json.dumps({"embeddings": embeddings.tolist(), "shape": list(embeddings.shape)}))


def run() -> None:
    """The `prism-tf-serve-request` command."""
    cli.run(main, _define_flags)


if __name__ == "__main__":
    run()
