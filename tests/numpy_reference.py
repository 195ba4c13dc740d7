"""Plain NumPy statements of PRISM.md and the loss formulas, loops and all.

The tests compare the TensorFlow code with these, so they are written for
obviousness, not speed.
"""

import math

import numpy as np


class RingBuffer:
    """The memory bank, one row at a time."""

    def __init__(self, size, dim, num_classes):
        self.embeddings = np.zeros((size, dim), np.float64)
        self.labels = np.full(size, -1)
        self.position = 0
        self.num_classes = num_classes

    def enqueue(self, embeddings, labels, mask=None):
        for i, (row, label) in enumerate(zip(embeddings, labels)):
            if mask is None or mask[i]:
                self.embeddings[self.position] = row
                self.labels[self.position] = label
                self.position = (self.position + 1) % len(self.labels)

    def class_counts(self):
        return np.array([(self.labels == k).sum() for k in range(self.num_classes)])

    def class_centers(self):
        centers = np.zeros((self.num_classes, self.embeddings.shape[1]))
        for k in range(self.num_classes):
            if (self.labels == k).any():
                centers[k] = self.embeddings[self.labels == k].mean(axis=0)
        return centers


def clean_probability(z, labels, buffer, temperature=1.0):
    """Softmax over the classes present in memory of w_k . z, at the own label."""
    centers, counts = buffer.class_centers(), buffer.class_counts()
    present = [k for k in range(buffer.num_classes) if counts[k] > 0]
    p = np.ones(len(z))
    for i, (zi, yi) in enumerate(zip(z, labels)):
        if counts[yi] == 0:
            continue
        logits = {k: centers[k] @ zi / temperature for k in present}
        p[i] = math.exp(logits[yi]) / sum(math.exp(v) for v in logits.values())
    return p


class SmoothTopR:
    """PRISM.md's selection rule with its window, step by step."""

    def __init__(self, noise_rate, window_size):
        self.noise_rate, self.window_size = noise_rate, window_size
        self.window = []

    def select(self, p):
        n = len(p)
        r = math.floor(self.noise_rate * n)
        if r == 0:
            return np.ones(n, bool), 0.0
        order = np.argsort(np.where(np.isnan(p), -np.inf, p), kind="stable")
        q = p[order[r - 1]]
        if np.isfinite(q) and q < 1:
            self.window = (self.window + [q])[-self.window_size:]
        top_r = np.ones(n, bool)
        top_r[order[:r]] = False
        if not self.window:
            return top_r, q
        threshold = np.mean(self.window)
        keep = p > threshold
        if not keep.any():
            self.window = self.window[-1:]
            return top_r, q
        return keep, threshold


def _pava_non_increasing(values, weights):
    """Weighted isotonic (non-increasing) regression by pool-adjacent-violators."""
    blocks = []   # [value, weight, length]
    for value, weight in zip(values, weights):
        blocks.append([value, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] < blocks[-1][0]:
            (v1, w1, n1), (v2, w2, n2) = blocks[-2], blocks.pop()
            blocks[-1] = [(v1 * w1 + v2 * w2) / (w1 + w2) if w1 + w2 else 0.0, w1 + w2,
                          n1 + n2]
    return np.concatenate([[value] * length for value, _, length in blocks])


def rank_mixture(batches, bins=8, tail_cuts=(4, 5, 6)):
    """The auto selector's (noise estimate, posterior per bin, separability)
    from [(label ranks of a batch, other classes in memory), ...], counted
    by enumerating every rank a wrong label can take."""
    observed, wrong, wrong_rank_sum = np.zeros(bins), np.zeros(bins), 0.0
    ranks = np.concatenate([r[r >= 0] for r, _ in batches])
    for r, others in batches:
        r = r[r >= 0]
        bin_of = lambda u: np.clip(np.ceil(u * bins).astype(int) - 1, 0, bins - 1)
        observed += np.bincount(bin_of(r), minlength=bins)
        possible = (1 + np.arange(others)) / others   # a wrong label's ranks, equally likely
        wrong += len(r) * np.bincount(bin_of(possible), minlength=bins) / others
        wrong_rank_sum += len(r) * possible.mean()
    observed[wrong == 0] = 0   # bins no wrong label reaches say nothing
    ratio = np.divide(observed, wrong, out=np.zeros(bins), where=wrong > 0)
    density = _pava_non_increasing(ratio, wrong)
    estimate = min(1.0, min(observed[a:].sum() / wrong[a:].sum() for a in tail_cuts))
    posterior = np.minimum(np.divide(estimate, density, out=np.zeros(bins),
                                     where=density > 0), 1.0)
    clean_mean_rank = np.clip((ranks.sum() - estimate * wrong_rank_sum)
                              / ((1 - estimate) * len(ranks)), 0.0, 0.5) if estimate < 1 else 0.5
    return estimate, posterior, 1.0 - clean_mean_rank


def _pairs(labels, embeddings, ref_embeddings=None, ref_labels=None, kept=None):
    """Yields (i, j, same_label, anchor, reference) over all valid pairs;
    with `kept` (against the batch itself), only the kept anchors and
    positives, and every negative."""
    self_reference = ref_embeddings is None
    if self_reference:
        ref_embeddings, ref_labels = embeddings, labels
    for i in range(len(labels)):
        for j in range(len(ref_labels)):
            same = labels[i] == ref_labels[j]
            if (self_reference and i == j) or (kept is not None and not (
                    kept[i] and (kept[j] or not same))):
                continue
            yield i, j, same, embeddings[i], ref_embeddings[j]


def _l2(a, b):
    return float(np.linalg.norm(a - b))


def _cos(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def distance(a, b, metric):
    if metric == "L2":
        return _l2(a, b)
    if metric == "squared-L2":
        return _l2(a, b) ** 2
    return max(1.0 - _cos(a, b), 0.0)


def memory_contrastive(labels, embeddings, ref_embeddings=None, ref_labels=None,
                       margin=0.5, kept=None):
    total = 0.0
    for _, _, same, a, b in _pairs(labels, embeddings, ref_embeddings, ref_labels, kept):
        s = _cos(a, b)
        if same and s < 1 - 1e-5:
            total += 1 - s
        elif not same and s > margin:
            total += s
    return total / (len(labels) if kept is None else np.sum(kept))


def contrastive(labels, embeddings, margin=1.0):
    values = [_l2(a, b) ** 2 if same else max(margin - _l2(a, b), 0) ** 2
              for _, _, same, a, b in _pairs(labels, embeddings)]
    return float(np.mean(values))


def _distance_rows(labels, embeddings, metric):
    n = len(labels)
    d = np.array([[distance(embeddings[i], embeddings[j], metric) for j in range(n)]
                  for i in range(n)])
    return n, d


def triplet_semihard(labels, embeddings, margin=1.0, metric="L2", kept=None):
    """With `kept`: the kept anchors and positives, every negative."""
    n, d = _distance_rows(labels, embeddings, metric)
    kept = np.ones(n, bool) if kept is None else kept
    losses = []
    for a in np.flatnonzero(kept):
        negatives = [d[a, k] for k in range(n) if labels[k] != labels[a]]
        for p in np.flatnonzero(kept):
            if p == a or labels[p] != labels[a]:
                continue
            farther = [x for x in negatives if x > d[a, p]]
            negative = min(farther) if farther else max(negatives, default=0.0)
            losses.append(max(margin + d[a, p] - negative, 0.0))
    return float(np.mean(losses))


def triplet_hard(labels, embeddings, margin=1.0, soft=False, metric="L2"):
    n, d = _distance_rows(labels, embeddings, metric)
    losses = []
    for a in range(n):
        positives = [d[a, k] for k in range(n) if k != a and labels[k] == labels[a]]
        negatives = [d[a, k] for k in range(n) if labels[k] != labels[a]]
        hp = max(positives, default=0.0)
        hn = min(negatives) if negatives else max(d[a])
        losses.append(math.log1p(math.exp(hp - hn)) if soft else max(hp - hn + margin, 0))
    return float(np.mean(losses))


def lifted_struct(labels, embeddings, margin=1.0):
    n, d = _distance_rows(labels, embeddings, "L2")
    terms = []
    for i in range(n):
        for j in range(n):
            if i == j or labels[i] != labels[j]:
                continue
            total = sum(math.exp(margin - d[i, k]) for k in range(n) if labels[k] != labels[i])
            total += sum(math.exp(margin - d[l, j]) for l in range(n) if labels[l] != labels[j])
            jij = math.log(total) + d[i, j]
            terms.append(max(jij, 0.0) ** 2)
    return 0.5 * float(np.mean(terms))


def multi_similarity(labels, embeddings, ref_embeddings=None, ref_labels=None,
                     alpha=2.0, beta=50.0, base=0.5):
    positive = np.zeros(len(labels))
    negative = np.zeros(len(labels))
    for i, _, same, a, b in _pairs(labels, embeddings, ref_embeddings, ref_labels):
        s = _cos(a, b)
        if same:
            positive[i] += math.exp(-alpha * (s - base))
        else:
            negative[i] += math.exp(beta * (s - base))
    return float(np.mean(np.log1p(positive) / alpha + np.log1p(negative) / beta))


def _unit(rows):
    rows = np.asarray(rows, np.float64)
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def soft_triple(labels, embeddings, proxies, centers_per_class, la=20.0, gamma=0.1,
                margin=0.01):
    """SoftTriple (Qian et al. 2019, without the regulariser), one sample at a time."""
    z, w = _unit(embeddings), _unit(proxies)
    classes = len(w) // centers_per_class
    losses = []
    for x, label in zip(z, labels):
        relaxed = []
        for c in range(classes):
            s = w[c * centers_per_class:(c + 1) * centers_per_class] @ x
            soft = np.exp(s / gamma) / np.exp(s / gamma).sum()
            relaxed.append(float(soft @ s))
        logits = [la * (r - (margin if c == label else 0.0)) for c, r in enumerate(relaxed)]
        losses.append(-logits[label] + math.log(sum(math.exp(v) for v in logits)))
    return float(np.mean(losses))


def proxy_anchor(labels, embeddings, proxies, alpha=32.0, margin=0.1):
    """Proxy-Anchor (Kim et al. 2020), proxy by proxy."""
    z, p = _unit(embeddings), _unit(proxies)
    positive, negative, with_positives = 0.0, 0.0, 0
    for c, proxy in enumerate(p):
        s = z @ proxy
        own = np.asarray(labels) == c
        if own.any():
            with_positives += 1
            positive += math.log1p(np.exp(-alpha * (s[own] - margin)).sum())
        negative += math.log1p(np.exp(alpha * (s[~own] + margin)).sum())
    return positive / max(with_positives, 1) + negative / len(p)
