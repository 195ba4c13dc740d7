import numpy as np
import pytest

from prism_tf.evaluation import retrieval_metrics


def _brute_force(z, labels, recall_at):
    """Musgrave et al.'s definitions, one query at a time."""
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    out = {"precision_at_1": [], "r_precision": [], "map_at_r": []}
    out.update({f"recall_at_{k}": [] for k in recall_at})
    for q in range(len(z)):
        others = np.array([i for i in range(len(z)) if i != q])
        order = others[np.argsort(-(z[others] @ z[q]), kind="stable")]
        rel = labels[order] == labels[q]
        r = int((labels == labels[q]).sum() - 1)
        if r == 0:
            continue
        out["precision_at_1"].append(rel[0])
        out["r_precision"].append(rel[:r].sum() / r)
        out["map_at_r"].append(sum(rel[:i + 1].mean() for i in range(r) if rel[i]) / r)
        for k in recall_at:
            out[f"recall_at_{k}"].append(rel[:k].any())
    return {name: float(np.mean(values)) for name, values in out.items()}


@pytest.mark.parametrize("chunk_size", [7, 1024])
@pytest.mark.parametrize("seed", [0, 1])
def test_metrics_equal_numpy_brute_force(chunk_size, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 12, 90)
    labels[-1] = 99  # a singleton class: no answer, left out
    z = rng.normal(size=(90, 5)) + np.eye(12, 5)[labels % 12] * 1.5
    got = retrieval_metrics(z, labels, recall_at=(1, 2, 4, 8), chunk_size=chunk_size)
    want = _brute_force(z, labels, (1, 2, 4, 8))
    for name, value in want.items():
        assert got[name] == pytest.approx(value, abs=1e-9), name
    assert got["num_queries"] == 89


def test_perfect_and_hopeless_embeddings():
    labels = np.repeat(np.arange(4), 5)
    perfect = retrieval_metrics(np.eye(4)[labels] + 1e-3 * np.arange(20)[:, None], labels)
    assert perfect["precision_at_1"] == perfect["map_at_r"] == perfect["r_precision"] == 1.0
    with pytest.raises(ValueError, match="at least 2 embeddings"):
        retrieval_metrics(np.ones((1, 3)), [0])


def test_faiss_backend_gives_the_same_metrics():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 10, 300)
    z = rng.normal(size=(300, 8)) + np.eye(10, 8)[labels] * 2.0
    exact = retrieval_metrics(z, labels, backend="tensorflow")
    assert retrieval_metrics(z, labels, backend="faiss") == pytest.approx(exact, abs=1e-9)


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="backend must be"):
        retrieval_metrics(np.eye(3), [0, 0, 1], backend="annoy")


def test_unscorable_inputs_are_refused_not_reported_as_nan():
    z = np.eye(4, dtype="float32")
    with pytest.raises(ValueError, match="no query has a match to find"):
        retrieval_metrics(z, [0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"recall_at must be integers >= 1; got \(0,\)"):
        retrieval_metrics(z, [0, 0, 1, 1], recall_at=(0,))
    z[2, 1] = np.nan
    with pytest.raises(ValueError, match="1 of 4 embeddings are not finite"):
        retrieval_metrics(z, [0, 0, 1, 1])
