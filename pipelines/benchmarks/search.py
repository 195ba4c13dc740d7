r"""Benchmark: the export's exact gallery search against faiss, and its recall.

    python -m pipelines.benchmarks.search --rows=10000,100000,1000000 --dims=64,512
    python -m pipelines.benchmarks.search --rows= --workdir=runs/x    # recall only

Speed: for each gallery of random unit rows, the search the export's
`search` signatures run (`prism_tf.search.top_k_rows` over one variable
per shard, in a `tf.function`, without the encoder) and faiss's exact
`IndexFlatIP` on the same rows and the same queries, interleaved: ms per
query for one query at a time and for batches of --batch, median of
--repetitions; the memory each needs (`memory_of`: the peak resident set's
growth while it is built and answers one batch, in a fresh process) beside
the gallery's own bytes. The answers
are checked equal (rows, or scores where rows tie).

The largest gallery is also exported for real (a small encoder of that
width): the SavedModel's size on disk, its load time, and one query through
the loaded `search` signature, checked against `GalleryIndex.search`.

Recall (--workdir): the run's evaluation split indexed (`pipelines.index`),
exported with it, searched through the loaded `search` signature, and
leave-one-out Recall@K compared with `pipelines.evaluate` on the same split
(`tests/test_train_pipeline.py` does the same through the TF1 loader).
"""

import os
from pathlib import Path
import resource
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

from absl import app, flags
import numpy as np
import tensorflow as tf

from .common import time_per_call, unit_rows
from prism_tf.search import SHARD_ROWS, GalleryIndex, leave_one_out_recall, top_k_rows

FLAGS = flags.FLAGS


def _define_flags() -> None:
    flags.DEFINE_list("rows", ["10000", "100000", "1000000"], "Gallery sizes (empty: none).")
    flags.DEFINE_list("dims", ["64", "512"], "Embedding widths.")
    flags.DEFINE_integer("k", 10, "Neighbours per query.")
    flags.DEFINE_integer("batch", 64, "Queries per batched call.")
    flags.DEFINE_integer("repetitions", 5, "Interleaved repetitions; the median is kept.")
    flags.DEFINE_string("workdir", None, "A trained run whose evaluation split is indexed "
                        "for the recall check.")
    flags.DEFINE_string("memory_of", None, "BACKEND:ROWS:DIM: print memory_of's MB and stop "
                        "(what the table's memory columns run in a fresh process).")


def resident_bytes() -> int:
    """This process's resident set size now (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_bytes() -> int:
    """This process's largest resident set size so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def memory_of(backend: str, rows: int, dim: int, k: int, batch: int) -> float:
    """MB by which building `backend`'s search ("tf" or "faiss") over a
    gallery and answering one batch raises the resident set's peak above
    what the process held with the gallery in hand; run in a fresh process
    (`--memory_of`), so no other allocation is counted or reused."""
    import faiss  # the `faiss` extra

    rng = np.random.default_rng(rows + dim)
    gallery = unit_rows(rng, rows, dim)
    queries = unit_rows(rng, batch, dim)
    if backend == "tf":
        index = GalleryIndex(gallery, np.zeros(rows, np.int64))
        del gallery   # the index holds the gallery's (normalised) copy
        tf.constant(queries)   # the runtime's own start-up, not the search's
        before = resident_bytes()
        search = _Search(index, k).search
        del index
        search(tf.constant(queries))
    else:
        before = resident_bytes()
        flat = faiss.IndexFlatIP(dim)
        flat.add(gallery)
        flat.search(queries, k)
    return (peak_bytes() - before) / 2**20


class _Search(tf.Module):
    """The export's search, without the encoder: the gallery in one variable
    per shard, queries [Q, D] -> (scores, rows) [Q, k]."""

    def __init__(self, index: GalleryIndex, k: int):
        super().__init__()
        self.shards = [tf.Variable(shard, trainable=False) for shard in index.shards()]
        self.k = k
        self.search = tf.function(self._search, input_signature=[
            tf.TensorSpec([None, index.dim], tf.float32)])

    def _search(self, queries):
        return top_k_rows(queries, self.shards, self.k)


def _calls_for(seconds_per_call: float, budget: float = 1.0) -> int:
    return int(np.clip(budget / max(seconds_per_call, 1e-6), 3, 200))


def speed(rows: int, dim: int, k: int, batch: int, repetitions: int) -> Dict[str, float]:
    """ms per query and resident growth (MB) of the TF search and faiss."""
    import faiss  # the `faiss` extra

    rng = np.random.default_rng(rows + dim)
    gallery = unit_rows(rng, rows, dim)
    queries = unit_rows(rng, batch, dim)
    result = {"gallery_mb": gallery.nbytes / 2**20}

    search = _Search(GalleryIndex(gallery, np.zeros(rows), shard_rows=SHARD_ROWS), k).search
    tf_scores, tf_rows = (t.numpy() for t in search(tf.constant(queries)))
    flat = faiss.IndexFlatIP(dim)
    flat.add(gallery)
    faiss_scores, faiss_rows = flat.search(queries, k)
    for backend in ("tf", "faiss"):
        probe = subprocess.run(
            [sys.executable, "-m", "pipelines.benchmarks.search", "--rows=", f"--k={k}",
             f"--batch={batch}", f"--memory_of={backend}:{rows}:{dim}"],
            capture_output=True, text=True, check=True)
        result[f"{backend}_memory_mb"] = float(probe.stdout.split()[-1])
    same_rows = (tf_rows == faiss_rows) | np.isclose(tf_scores, faiss_scores, atol=1e-5)
    if not same_rows.all() or not np.allclose(tf_scores, faiss_scores, atol=1e-4):
        raise AssertionError(f"rows={rows} dim={dim}: the TF search and faiss disagree")

    one, many = tf.constant(queries[:1]), tf.constant(queries)
    runs = {"tf_one": lambda: search(one), "tf_batch": lambda: search(many),
            "faiss_one": lambda: flat.search(queries[:1], k),
            "faiss_batch": lambda: flat.search(queries, k)}
    calls = {name: _calls_for(time_per_call(fn, 1)) for name, fn in runs.items()}
    times: Dict[str, List[float]] = {name: [] for name in runs}
    for _ in range(repetitions):
        for name, fn in runs.items():
            times[name].append(time_per_call(fn, calls[name]))
    for name, values in times.items():
        per_query = np.median(values) / (batch if name.endswith("batch") else 1)
        result[f"{name}_ms"] = 1e3 * float(per_query)
    return result


def real_export(rows: int, dim: int, k: int) -> Dict[str, float]:
    """Export a gallery of `rows` x `dim` with a small encoder; its size,
    load time and one query's answer, checked."""
    from prism_tf.data.pipeline import Preprocessing
    from prism_tf.encoders import small_cnn
    from prism_tf.export import export_saved_model

    rng = np.random.default_rng(7)
    preprocessing = Preprocessing(image_size=16, channels=1, mean=None, std=None)
    encoder = small_cnn((16, 16, 1), dim)
    index = GalleryIndex(unit_rows(rng, rows, dim), rng.integers(0, 100, rows),
                         [f"images/{i:07d}.jpg" for i in range(rows)])
    image = rng.random((1, 16, 16, 1), dtype=np.float32)
    expected = index.search(encoder.predict(image, verbose=0), k)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        path = export_saved_model(encoder, folder, preprocessing, index=index, search_k=k)
        export_s = time.perf_counter() - start
        size = sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
        del index
        start = time.perf_counter()
        search = tf.saved_model.load(str(path)).signatures["search"]
        load_s = time.perf_counter() - start
        found = search(images=tf.constant(image))
        first_s = time.perf_counter() - start - load_s
        if not (found["rows"].numpy() == expected.rows).all():
            raise AssertionError("the exported search disagrees with GalleryIndex.search")
        if found["paths"].numpy()[0, 0].decode() != expected.paths[0, 0]:
            raise AssertionError("the exported search's paths disagree")
    return {"export_mb": size / 2**20, "export_s": export_s, "load_s": load_s,
            "first_query_s": first_s}


def recall(workdir: str) -> Dict[str, Dict[str, float]]:
    """Recall@K of the export's `search` (TF1 loader) and of evaluate."""
    from pipelines.evaluate import evaluate
    from pipelines.export import export_run
    from pipelines.factories import preprocessing
    from pipelines.index import index_gallery
    from pipelines.runs import Run
    from prism_tf.data.pipeline import eval_dataset

    run = Run(workdir)
    ks = tuple(run.config.eval.recall_at)
    test = run.splits()[1]
    with tempfile.TemporaryDirectory() as folder:
        index_gallery(workdir, output=f"{folder}/index")
        path = export_run(workdir, f"{folder}/models", index=f"{folder}/index",
                          search_k=max(ks) + 1, allow_unfinished=True)
        images = eval_dataset(test, run.config.eval.batch_size, preprocessing(run.config))
        search = tf.saved_model.load(str(path)).signatures["search"]
        rows = np.concatenate([search(images=batch)["rows"].numpy() for batch, _ in images])
    evaluated = evaluate(workdir)
    return {"search": leave_one_out_recall(rows, test.labels, ks),
            "evaluate": {f"recall_at_{k}": evaluated[f"recall_at_{k}"] for k in ks}}


def main(argv):
    del argv
    tf.get_logger().setLevel("ERROR")
    if FLAGS.memory_of:
        backend, rows, dim = FLAGS.memory_of.split(":")
        print(memory_of(backend, int(rows), int(dim), FLAGS.k, FLAGS.batch))
        return
    if FLAGS.workdir:
        found = recall(FLAGS.workdir)
        print(f"Recall@K on {FLAGS.workdir}'s evaluation split")
        print("| | " + " | ".join(found["search"]) + " |")
        print("| --- |" + " ---: |" * len(found["search"]))
        for name, values in found.items():
            print(f"| {name} | " + " | ".join(f"{v:.4f}" for v in values.values()) + " |")
    sizes = [(int(r), int(d)) for r in FLAGS.rows if r for d in FLAGS.dims]
    if not sizes:
        return
    print(f"k={FLAGS.k}, batches of {FLAGS.batch}; ms per query (median of "
          f"{FLAGS.repetitions}); MB the search adds to the process")
    print("| rows | dim | gallery MB | TF: 1 query | TF: batched | faiss: 1 query | "
          "faiss: batched | TF MB | faiss MB |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for rows, dim in sizes:
        r = speed(rows, dim, FLAGS.k, FLAGS.batch, FLAGS.repetitions)
        print(f"| {rows:,} | {dim} | {r['gallery_mb']:.0f} | {r['tf_one_ms']:.3f} | "
              f"{r['tf_batch_ms']:.3f} | {r['faiss_one_ms']:.3f} | {r['faiss_batch_ms']:.3f} | "
              f"{r['tf_memory_mb']:.0f} | {r['faiss_memory_mb']:.0f} |", flush=True)
    rows, dim = max(sizes)
    r = real_export(rows, dim, FLAGS.k)
    print(f"Exported {rows:,} x {dim}: {r['export_mb']:.0f} MB on disk, written in "
          f"{r['export_s']:.1f} s, loaded in {r['load_s']:.1f} s, first query "
          f"{r['first_query_s']:.2f} s, rows as GalleryIndex.search")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
