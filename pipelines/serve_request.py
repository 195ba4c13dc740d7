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
from typing import Dict, List, Optional
import urllib.request

from absl import app, flags
import numpy as np
import tensorflow as tf

from pipelines import cli
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


def read_contract(path: str) -> Dict[str, object]:
    """The preprocessing contract from its file or from an export's version folder."""
    path = Path(path)
    if path.is_dir():
        path = path / "assets.extra" / CONTRACT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no preprocessing contract at {path}")
    return json.loads(path.read_text())


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
    preprocessing = preprocessing_from_contract(contract)
    return {"images": np.stack([preprocessing.eval_view_of_file(data).numpy()
                                for data in encoded])}


def send_rest(server: str, model_name: str, body: Dict[str, object],
              timeout: float) -> np.ndarray:
    """POSTs a `:predict` body; returns the embeddings [N, D]."""
    request = urllib.request.Request(
        f"http://{server}/v1/models/{model_name}:predict", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return np.asarray(json.loads(response.read())["predictions"], np.float32)


def send_grpc(server: str, request, timeout: float) -> np.ndarray:
    """Calls PredictionService.Predict; returns the embeddings [N, D]."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(server) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, timeout=timeout)
    return tf.make_ndarray(response.outputs["embeddings"])


def main(argv):
    # `--images a.jpg b.png`: the names after the first arrive as arguments.
    images = (FLAGS.images or []) + argv[1:]
    if not images:
        raise app.UsageError("--images is required")
    try:
        contract = read_contract(FLAGS.contract) if FLAGS.contract else None
        inputs = request_inputs(images, FLAGS.signature, contract)
    except (FileNotFoundError, ValueError, tf.errors.InvalidArgumentError) as error:
        raise SystemExit(f"error: {error}")
    if FLAGS.format == "rest":
        body = rest_body(FLAGS.signature, inputs)
        if not FLAGS.server:
            print(json.dumps(body))
            return
        embeddings = send_rest(FLAGS.server, FLAGS.model_name, body, FLAGS.timeout)
    else:
        request = predict_request(FLAGS.signature, inputs, FLAGS.model_name)
        if not FLAGS.server:
            print(request)
            return
        embeddings = send_grpc(FLAGS.server, request, FLAGS.timeout)
    print(json.dumps({"embeddings": embeddings.tolist(), "shape": list(embeddings.shape)}))


if __name__ == "__main__":
    _define_flags()
    cli.run(main)
