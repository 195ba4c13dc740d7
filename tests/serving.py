"""TF Serving's side of an export, as the tests stand in for it.

The SavedModel is loaded the way TF Serving's C++ loader does it (a TF1
session that restores the variables with the export's own saver), REST
bodies are decoded by TF Serving's row-format rules, and two small servers on
127.0.0.1 answer REST `:predict` and gRPC `Predict` from that session, with
every output of the signature.
"""

import base64
import contextlib
import http.server
import json
import threading
import time
from concurrent import futures
from typing import Callable, Dict, Iterator, Optional

import numpy as np
import tensorflow as tf

Predict = Callable[[str, Dict[str, np.ndarray]], np.ndarray]


@contextlib.contextmanager
def tf1_loaded(path) -> Iterator[Predict]:
    """Yields predict(signature, {input name: array}, output="embeddings")
    -> that output (output=None: {name: array} of all), from a TF1 session
    that loaded `path` with `tf.compat.v1.saved_model.loader`."""
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))

        def predict(signature: str, inputs: Dict[str, np.ndarray],
                    output: Optional[str] = "embeddings"):
            definition = meta_graph.signature_def[signature]
            feeds = {definition.inputs[name].name: value for name, value in inputs.items()}
            if output is not None:
                return session.run(definition.outputs[output].name, feeds)
            names = sorted(definition.outputs)
            values = session.run([definition.outputs[n].name for n in names], feeds)
            return dict(zip(names, values))

        yield predict


def inputs_from_rest(body: Dict[str, object]) -> Dict[str, np.ndarray]:
    """A row-format `:predict` body as TF Serving turns it into input tensors."""
    def value(item):
        if isinstance(item, dict) and set(item) == {"b64"}:
            return base64.b64decode(item["b64"])
        return item

    names = body["instances"][0].keys()
    return {name: np.array([value(row[name]) for row in body["instances"]],
                           dtype=object if isinstance(body["instances"][0][name], dict)
                           else np.float32)
            for name in names}


def inputs_from_grpc(request) -> Dict[str, np.ndarray]:
    """A `PredictRequest`'s inputs as arrays."""
    return {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}


def rest_predictions(outputs: Dict[str, np.ndarray]) -> list:
    """TF Serving's row-format answer: one value per instance where the
    signature has one output, else one {output: value} per instance;
    strings as UTF-8 text."""
    def value(array):
        if array.dtype == object:
            return np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(array).tolist()
        return array.tolist()

    rows = {name: value(array) for name, array in outputs.items()}
    if len(rows) == 1:
        return next(iter(rows.values()))
    count = len(next(iter(rows.values())))
    return [{name: column[i] for name, column in rows.items()} for i in range(count)]


@contextlib.contextmanager
def rest_server(predict: Predict, model_name: str, port: int = 0) -> Iterator[str]:
    """A REST `/v1/models/MODEL:predict` endpoint on 127.0.0.1 (`port`, or a
    free one); yields host:port."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            if self.path != f"/v1/models/{model_name}:predict":
                self.send_error(404)
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            outputs = predict(body.get("signature_name", "serving_default"),
                              inputs_from_rest(body), None)
            answer = json.dumps({"predictions": rest_predictions(outputs)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    with _http_server(Handler, port) as address:
        yield address


@contextlib.contextmanager
def fixed_answer_server(status: int, body: bytes, delay: float = 0.0) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that answers every POST with `status` and
    `body` after `delay` seconds (a broken or slow server); yields host:port."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(delay)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    with _http_server(Handler, 0) as address:
        yield address


@contextlib.contextmanager
def _http_server(handler: type, port: int) -> Iterator[str]:
    """`handler` serving on 127.0.0.1:`port` (0: a free one) in a thread."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def grpc_server(predict: Predict, model_name: str, port: int = 0) -> Iterator[str]:
    """A gRPC PredictionService on 127.0.0.1 (`port`, or a free one); yields host:port."""
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    class Service(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            if request.model_spec.name != model_name:
                context.abort(grpc.StatusCode.NOT_FOUND, f"no model {request.model_spec.name}")
            outputs = predict(request.model_spec.signature_name or "serving_default",
                              inputs_from_grpc(request), None)
            response = predict_pb2.PredictResponse()
            for name, value in outputs.items():
                response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
            return response

    # One worker: the TF1 session is driven from one thread at a time.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)
