"""How PRISM's selector scores a sample against each class: one class per way.

A scoring gives every sample a logit for every class ([B, C], before the
selector's temperature) and says which classes take part (those in memory,
or all of them for proxies). `PrismSelector(scoring=NAME)` picks one from
`SCORINGS`; a new scoring is a subclass with a `name` and one line there
(docs/EXTENDING.md). A scoring that needs a part of the model (ProxySim
needs the batch loss's proxies) takes it in `attach`, which `PrismModel`
calls with its batch loss for every scoring alike. The noisy-label finder
scores a whole set held as a bank, each sample without its own row
(`leave_one_out_logits`), through the same classes.

>>> bank = MemoryBank(size=4, dim=2, num_classes=2)
>>> bank.enqueue([[1., 0.], [0., 1.]], [0, 1])
>>> CenterSimilarity().logits(tf.constant([[1., 0.]]), bank).numpy().tolist()
[[1.0, 0.0]]
"""

from typing import Dict, Tuple, Type

import tensorflow as tf

from prism_tf import vmf
from prism_tf.memory_bank import MemoryBank
from prism_tf.proxy_losses import ProxyLoss


class Scoring:
    """The protocol: `logits(embeddings, bank)` [B, C] and `present(bank)`
    bool [C]; `attach(batch_loss)` hands over the model's batch loss (most
    scorings need nothing from it)."""

    name = ""
    # Whether scoring needs the model's batch loss handed over by `attach`
    # (ProxySim: its proxies): the label finder then restores the run's model.
    reads_batch_loss = False

    def attach(self, batch_loss) -> None:
        """Takes what this scoring needs from the model's batch loss."""

    def present(self, bank: MemoryBank) -> tf.Tensor:
        """The classes the scores compare, bool [C]: those in memory."""
        return tf.convert_to_tensor(bank.class_counts) > 0

    def logits(self, embeddings: tf.Tensor, bank: MemoryBank) -> tf.Tensor:
        """Each sample's logit for each class before the temperature [B, C];
        classes not `present` may hold anything finite."""
        raise NotImplementedError

    def leave_one_out_logits(self, embeddings: tf.Tensor, labels: tf.Tensor,
                             bank: MemoryBank) -> Tuple[tf.Tensor, tf.Tensor]:
        """(logits [B, C], present bool [B, C]) of samples whose rows are in
        `bank`, each scored as if its own row were not there (so a class
        of 5 does not hold a fifth of each member's own embedding): how
        `prism_tf.label_issues` scores a whole set. A scoring without this
        form cannot be used by the finder."""
        raise NotImplementedError(f"scoring {self.name!r} has no leave-one-out form "
                                  "(Scoring.leave_one_out_logits): the label finder "
                                  "cannot score a set with it")


class CenterSimilarity(Scoring):
    """PRISM's AvgSim in its accelerated form: w_k . z with w_k the (not
    re-normalised) mean memory embedding of class k, from the class sums
    (one [B, C] matmul, no [C, D] centres made)."""

    name = "centers"

    def logits(self, embeddings, bank):
        return _class_means(tf.matmul(embeddings, bank.class_sums, transpose_b=True), bank)

    def leave_one_out_logits(self, embeddings, labels, bank):
        return _leave_one_out_class_means(embeddings, labels, bank)


class FullSimilarity(Scoring):
    """The same numbers as `CenterSimilarity` from the average similarity
    to every memory row of the class (one [B, K] matmul): for comparison."""

    name = "full"

    def logits(self, embeddings, bank):
        row_similarity = tf.matmul(embeddings, bank.embeddings, transpose_b=True)
        # Empty slots (label -1) go to an extra segment that is dropped.
        segments = tf.where(bank.occupied(), bank.labels, bank.num_classes)
        class_sums = tf.transpose(tf.math.unsorted_segment_sum(
            tf.transpose(row_similarity), segments, bank.num_classes + 1)[:-1])
        return _class_means(class_sums, bank)

    def leave_one_out_logits(self, embeddings, labels, bank):
        # The same numbers again; from the class sums, not [B, N] row similarities.
        return _leave_one_out_class_means(embeddings, labels, bank)


class VmfSimilarity(Scoring):
    """vMF-Sim (the journal version): a von Mises-Fisher distribution per
    class, mean direction and concentration from the class's rows, so a
    tight class weighs a given similarity more than a spread one
    (`prism_tf.vmf`). log C_D(kappa_k) + kappa_k mu_k . z, computed in
    float64 (kappa reaches ~1e7 for a class of one row)."""

    name = "vmf"

    def logits(self, embeddings, bank):
        similarity = tf.matmul(embeddings, bank.class_sums, transpose_b=True)
        return _vmf_logits(similarity, bank.class_sums[None], bank.class_counts[None])

    def leave_one_out_logits(self, embeddings, labels, bank):
        own, similarity, without_self, counts = _leave_one_out_sums(embeddings, labels, bank)
        # Only the own class's statistics change: its sum without the sample.
        own_sums = tf.gather(bank.class_sums, labels) - embeddings
        own_logit = _vmf_logits(tf.reduce_sum(tf.where(own, without_self, 0.0), 1, keepdims=True),
                                own_sums[:, None],
                                tf.reduce_sum(tf.where(own, counts, 0.0), 1, keepdims=True))
        logits = _vmf_logits(similarity, bank.class_sums[None], bank.class_counts[None])
        return tf.where(own, own_logit, logits), counts > 0


class ProxySimilarity(Scoring):
    """ProxySim (the journal version): the batch loss's learned proxies
    stand for the classes (`ProxyLoss.class_similarity`); every class
    counts as present, and the memory only takes the kept rows."""

    name = "proxies"
    reads_batch_loss = True

    def __init__(self):
        self.proxy_loss = None

    def attach(self, batch_loss) -> None:
        if not isinstance(batch_loss, ProxyLoss):
            raise ValueError(
                f"PrismSelector(scoring={self.name!r}) scores with the batch loss's proxies; "
                f"{type(batch_loss).__name__} has none (use a prism_tf.proxy_losses loss)")
        self.proxy_loss = batch_loss

    def present(self, bank):
        return tf.ones([bank.num_classes], tf.bool)

    def leave_one_out_logits(self, embeddings, labels, bank):
        # The proxies are no rows of the set: nothing to leave out.
        logits = self.logits(embeddings, bank)
        return logits, tf.ones_like(logits, tf.bool)

    def logits(self, embeddings, bank):
        if self.proxy_loss is None:
            raise ValueError(f"PrismSelector(scoring={self.name!r}): no proxy loss attached "
                             "(PrismModel attaches its batch loss; alone, call "
                             "selector.attach(proxy_loss))")
        return tf.cast(self.proxy_loss.class_similarity(embeddings), tf.float32)


def _vmf_logits(similarity: tf.Tensor, class_sums: tf.Tensor, counts: tf.Tensor) -> tf.Tensor:
    """log C_D(kappa) + kappa mu . z [B, C] from the similarities z . sum
    [B, C] and each class's row sum [1 or B, C, D] and row count [1 or B, C]."""
    dim = int(class_sums.shape[-1])
    norms = tf.norm(tf.cast(class_sums, tf.float64), axis=-1)
    kappa = vmf.concentration(tf.math.divide_no_nan(norms, tf.cast(counts, tf.float64)), dim)
    direction_similarity = tf.math.divide_no_nan(tf.cast(similarity, tf.float64), norms)
    return tf.cast(vmf.log_normalizer(kappa, dim) + kappa * direction_similarity, tf.float32)


def _leave_one_out_sums(embeddings: tf.Tensor, labels: tf.Tensor, bank: MemoryBank
                        ) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """(own class mask, z . class sums, the same with the sample's own row
    out of its class's sum (z . z taken off), class row counts with it out),
    each [B, C]."""
    own = tf.one_hot(labels, bank.num_classes) > 0
    similarity = tf.matmul(embeddings, bank.class_sums, transpose_b=True)
    without_self = similarity - tf.where(
        own, tf.reduce_sum(embeddings * embeddings, 1, keepdims=True), 0.0)
    counts = tf.cast(bank.class_counts, tf.float32)[None] - tf.cast(own, tf.float32)
    return own, similarity, without_self, counts


def _leave_one_out_class_means(embeddings: tf.Tensor, labels: tf.Tensor,
                               bank: MemoryBank) -> Tuple[tf.Tensor, tf.Tensor]:
    """Mean similarity to each class's rows, the own class without the
    sample's own row."""
    _, _, without_self, counts = _leave_one_out_sums(embeddings, labels, bank)
    return without_self / tf.maximum(counts, 1.0), counts > 0


def _class_means(class_sum_similarity: tf.Tensor, bank: MemoryBank) -> tf.Tensor:
    """Summed similarities to each class's rows divided by its row count."""
    counts = tf.convert_to_tensor(bank.class_counts)
    return class_sum_similarity / tf.cast(tf.maximum(counts, 1), tf.float32)


SCORINGS: Dict[str, Type[Scoring]] = {
    scoring.name: scoring
    for scoring in (CenterSimilarity, FullSimilarity, VmfSimilarity, ProxySimilarity)}
