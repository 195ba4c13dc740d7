"""PRISM's clean-sample selection: clean probability and smooth top-R."""

from typing import Tuple, Union

import keras
import tensorflow as tf

from prism_tf import compat, vmf
from prism_tf.memory_bank import MemoryBank, check_labels

PROXIES = "proxies"
SCORINGS = ("centers", "full", "vmf", PROXIES)
AUTO = "auto"


@compat.register_serializable(package="prism_tf")
class PrismSelector(keras.layers.Layer):
    """Scores a batch against the memory and keeps the samples that look clean.

    `clean_probability` gives, for each sample, the softmax over the classes
    present in memory of `w_k . z / temperature`, read at the sample's own
    label, where `w_k` is the (not re-normalised) mean memory embedding of
    class k. The sum runs over the classes present in memory, as in the paper
    (the authors' code also counts empty classes, each as exp(0)). A sample
    whose class has no memory row yet gets probability 1.

    `select` applies the smooth top-R rule (sTRM) with r = floor(noise_rate *
    batch): the r-th lowest probability joins a window of the last
    `window_size` such values (only if finite and < 1); samples above the
    window mean are kept. With an empty window, or when nothing passes, the r
    lowest are dropped (plain top-R, by rank) and, in the second case, the
    window is cut to its newest value. The window is layer state, saved with
    the model.

    The noise estimate (not in the paper; it drives `noise_rate="auto"` and
    the guard). `label_rank` u in [0, 1] is the share of the other classes in
    memory that the sample's centre logits rank above its own label: about 0
    for a clean label the memory recognises, and uniform, as a p-value under
    its null, for a label drawn at random among the wrong classes. So the
    share of wrong labels is estimated as Storey's null proportion,
    R = share(u > 1/2) / P(u > 1/2 | wrong label), where the denominator is
    exact for C classes in memory if the true class ranks first (1/2 for
    many classes, 5/9 for 10). Clean samples that the memory misranks push
    the estimate up, so it is an upper bound, tight when the memory tells
    the classes apart, and 1 when it cannot (every label then looks random).
    Per-batch estimates are averaged over the last `window_size` batches.

    The guard: while that estimate is above `max_noise_estimate`, the memory
    cannot tell a labelled class from a random one (early training, a weak
    encoder, or more wrong labels than PRISM handles), its ranking would
    drop samples at random, and every sample is kept (no threshold enters
    the window). `noise_rate="auto"` drops the estimated share once
    `window_size` batches have been scored (the batch that completes the
    window is the first to select); before that every sample is kept.

    Args:
      noise_rate: expected share of wrong labels R, in [0, 1), or "auto".
      window_size: number of past thresholds (and noise estimates) averaged (tau).
      temperature: divides the logits.
      scoring: "centers" (PRISM's AvgSim in its accelerated form, one
        [B, C] matmul), "full" (average similarity to every memory row of
        the class, one [B, K] matmul; the same numbers, for comparison) or
        "vmf" (vMF-Sim, the journal version: a von Mises-Fisher
        distribution per class, mean direction and concentration from the
        class's rows, so a tight class weighs a given similarity more than a
        spread one; `prism_tf.vmf`) or "proxies" (ProxySim, the journal
        version: the batch loss's learned proxies stand for the classes,
        `class_similarity` from a `prism_tf.proxy_losses.ProxyLoss`; every
        class counts as present, and the memory only takes the kept rows).
      max_noise_estimate: the guard's limit, in (0, 1]; 1 turns it off (the
        authors' selector).

    Example:

    >>> bank = MemoryBank(size=8, dim=2, num_classes=2)
    >>> bank.enqueue([[1., 0.], [0., 1.]], [0, 1])
    >>> selector = PrismSelector(noise_rate=0.5, window_size=5)
    >>> keep, p_clean = selector([[1., 0.], [1., 0.]], [0, 1], bank)
    >>> keep.numpy().tolist()
    [True, False]
    """

    def __init__(self, noise_rate: Union[float, str], window_size: int = 30,
                 temperature: float = 1.0, scoring: str = "centers",
                 max_noise_estimate: float = 0.7, **kwargs):
        if noise_rate != AUTO and not (isinstance(noise_rate, (int, float))
                                       and 0.0 <= noise_rate < 1.0):
            raise ValueError(f"PrismSelector: noise_rate must be in [0, 1) or "
                             f"{AUTO!r}; got {noise_rate!r}")
        if not 0.0 < max_noise_estimate <= 1.0:
            raise ValueError(f"PrismSelector: max_noise_estimate must be in (0, 1]; "
                             f"got {max_noise_estimate!r}")
        if not isinstance(window_size, int) or window_size < 1:
            raise ValueError(
                f"PrismSelector: window_size must be a positive integer; "
                f"got {window_size!r}")
        if not temperature > 0:
            raise ValueError(
                f"PrismSelector: temperature must be > 0; got {temperature!r}")
        if scoring not in SCORINGS:
            raise ValueError(
                f"PrismSelector: scoring must be one of {SCORINGS}; got {scoring!r}")
        kwargs.setdefault("dtype", "float32")
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.noise_rate = noise_rate if noise_rate == AUTO else float(noise_rate)
        self.window_size = window_size
        self.temperature = float(temperature)
        self.scoring = scoring
        self.max_noise_estimate = float(max_noise_estimate)
        self._estimates = self.add_weight(
            name="noise_estimates", shape=(window_size,), initializer="zeros",
            trainable=False)
        self._estimate_count = self.add_weight(
            name="noise_estimate_count", shape=(), dtype="int32", initializer="zeros",
            trainable=False)
        # Newest threshold last; only the last `window_count` entries count.
        self._window = self.add_weight(
            name="window", shape=(window_size,), initializer="zeros",
            trainable=False)
        self._window_count = self.add_weight(
            name="window_count", shape=(), dtype="int32", initializer="zeros",
            trainable=False)
        self.built = True

    @property
    def window(self) -> tf.Variable:
        """Past thresholds q, newest last [window_size]."""
        return compat.tf_variable(self._window)

    @property
    def window_count(self) -> tf.Variable:
        """How many of the newest window entries are in use."""
        return compat.tf_variable(self._window_count)

    # Not `call`: Keras 3 layers take only tensors as positional arguments,
    # and the selector needs the bank. Nothing here needs Layer.__call__.
    def __call__(self, embeddings, labels, bank: MemoryBank,
                 class_similarity=None) -> Tuple[tf.Tensor, tf.Tensor]:
        """Returns (keep bool [B], p_clean float32 [B]) and advances the window."""
        p_clean, label_rank = self.scores(embeddings, labels, bank, class_similarity)
        self.observe(label_rank, bank)
        keep, _ = self.select(p_clean)
        return keep, p_clean

    def clean_probability(self, embeddings, labels, bank: MemoryBank,
                          class_similarity=None) -> tf.Tensor:
        """P(label is clean) for each sample [B], from the memory as it is now."""
        return self.scores(embeddings, labels, bank, class_similarity)[0]

    def scores(self, embeddings, labels, bank: MemoryBank,
               class_similarity=None) -> Tuple[tf.Tensor, tf.Tensor]:
        """(p_clean [B], label_rank [B]) from the memory as it is now.

        `label_rank` is the share of the other classes in memory whose
        logit is above the label's (ties count half), or -1 where it says
        nothing: the label's class is not in memory, or no other class is.
        `class_similarity` [B, C]: the proxies' (`ProxyLoss.class_similarity`),
        which `scoring="proxies"` needs and the others refuse.
        """
        if (class_similarity is None) == (self.scoring == PROXIES):
            raise ValueError(
                f"PrismSelector(scoring={self.scoring!r}): class_similarity must "
                f"{'be' if self.scoring == PROXIES else 'not be'} given (it comes from "
                "a proxy batch loss, prism_tf.proxy_losses)")
        labels = check_labels(labels, bank.num_classes, "PrismSelector")
        embeddings = tf.cast(tf.convert_to_tensor(embeddings), tf.float32)
        present = self._present(bank)
        logits = self._logits(embeddings, bank, class_similarity) / self.temperature
        log_normalizer = tf.reduce_logsumexp(
            tf.where(present[None, :], logits, -float("inf")), axis=1)
        own_logit = tf.gather(logits, labels, batch_dims=1)
        p_clean = tf.exp(own_logit - log_normalizer)
        own_present = tf.gather(present, labels)
        others = tf.reduce_sum(tf.cast(present, tf.float32)) - 1.0
        # The own class is masked out, not compared with itself: XLA may
        # compute the two copies of its logit with different rounding.
        compared = tf.cast(present, tf.float32)[None, :] * (
            1.0 - tf.one_hot(labels, bank.num_classes))
        above = tf.reduce_sum(compared * (tf.cast(logits > own_logit[:, None], tf.float32)
                                          + 0.5 * tf.cast(logits == own_logit[:, None],
                                                          tf.float32)), axis=1)
        label_rank = tf.math.divide_no_nan(above, others)
        ranked = own_present & (others > 0)
        return (tf.where(own_present, p_clean, 1.0),
                tf.where(ranked, label_rank, -1.0))

    def noise_estimate(self) -> tf.Tensor:
        """Mean of the windowed per-batch estimates of the wrong-label share
        (1 while there is none: nothing is known yet)."""
        return tf.where(self._estimate_count > 0,
                        self._mean_of_newest(self._estimates, self._estimate_count), 1.0)

    def observe(self, label_rank, bank: MemoryBank, advance=True) -> tf.Tensor:
        """Adds one batch's estimate of the wrong-label share to the window
        (if `advance` and the batch has ranked samples); returns it (-1 if none)."""
        label_rank = tf.reshape(tf.cast(label_rank, tf.float32), [-1])
        ranked = label_rank >= 0.0
        count = tf.reduce_sum(tf.cast(ranked, tf.float32))
        high = tf.reduce_sum(tf.cast(ranked & (label_rank > 0.5), tf.float32))
        # P(u > 1/2 | wrong label) with m = C - 1 other classes, the true one
        # ranking first: u = (1 + j) / m, j uniform in 0..m-1.
        others = tf.cast(tf.math.count_nonzero(self._present(bank)), tf.float32) - 1.0
        wrong_tail = tf.math.divide_no_nan(others - tf.floor(others / 2.0), others)
        estimate = tf.minimum(tf.math.divide_no_nan(high / tf.maximum(count, 1.0),
                                                    wrong_tail), 1.0)
        estimates, estimate_count = self._pushed(
            self._estimates, self._estimate_count, estimate,
            tf.logical_and(advance, count > 0))
        self._estimates.assign(estimates)
        self._estimate_count.assign(estimate_count)
        return tf.where(count > 0, estimate, -1.0)

    def select(self, p_clean, advance=True) -> Tuple[tf.Tensor, tf.Tensor]:
        """Smooth top-R on one batch; advances the window state if `advance`
        (a bool or bool tensor: a refused training step leaves it as it was).

        Returns:
          keep: bool [B].
          threshold: the window mean used, or q when plain top-R decided, or
            0 when r = 0 (nothing is removed).
        """
        p_clean = tf.reshape(tf.cast(p_clean, tf.float32), [-1])
        batch = tf.size(p_clean)
        if self.noise_rate == 0.0:
            return tf.ones_like(p_clean, tf.bool), tf.constant(0.0)
        estimate, observed = self.noise_estimate(), self._estimate_count > 0
        if self.noise_rate == AUTO:
            rate = tf.where(self._estimate_count >= self.window_size, estimate, 0.0)
        else:
            rate = tf.constant(self.noise_rate)
        guard_open = tf.logical_or(tf.logical_not(observed),
                                   estimate <= self.max_noise_estimate)
        rate = tf.where(guard_open, rate, 0.0)
        num_removed = tf.cast(tf.floor(rate * tf.cast(batch, tf.float32)), tf.int32)

        # Plain top-R by rank, so ties (e.g. all P = 1) still drop exactly r.
        # NaN (a broken embedding) ranks lowest, so it goes first.
        order = tf.argsort(
            tf.where(tf.math.is_nan(p_clean), -float("inf"), p_clean), stable=True)
        rank_kept = tf.cast(tf.range(batch) >= num_removed, tf.int32)
        top_r_keep = tf.scatter_nd(order[:, None], rank_kept, [batch]) > 0
        # A gather, not a slice: XLA needs a slice's bounds at compile time,
        # and r depends on the noise estimate (a variable), so a slice would
        # recompile the step for every new r.
        q = tf.gather(tf.gather(p_clean, order), tf.maximum(num_removed - 1, 0))

        active = num_removed > 0
        appended = tf.logical_and(
            active, tf.logical_and(tf.math.is_finite(q), q < 1.0))
        window, count = self._pushed(self.window, self.window_count, q, appended)
        mean = self._mean_of_newest(window, count)
        above = p_clean > mean
        use_window = tf.logical_and(count > 0, tf.reduce_any(above))
        fallback = tf.logical_and(
            active, tf.logical_and(count > 0, tf.logical_not(use_window)))

        keep = tf.where(use_window, above, top_r_keep)
        keep = tf.logical_or(keep, tf.logical_not(active))
        threshold = tf.where(active, tf.where(use_window, mean, q), 0.0)
        self.window.assign(tf.where(advance, window, self.window))
        self.window_count.assign(
            tf.where(advance, tf.where(fallback, 1, count), self.window_count))
        return keep, threshold

    def _logits(self, embeddings: tf.Tensor, bank: MemoryBank,
                class_similarity) -> tf.Tensor:
        """Each sample's logit for each class before the temperature [B, C]."""
        if self.scoring == PROXIES:
            return tf.cast(class_similarity, tf.float32)
        counts = tf.convert_to_tensor(bank.class_counts)
        # Sum of similarities to each class's rows; divided by the counts this
        # is w_k . z. "centers" (and "vmf") get it from the class sums, [B, C]
        # work after one matmul, without materialising the [C, D] centres.
        if self.scoring == "full":
            row_similarity = tf.matmul(embeddings, bank.embeddings, transpose_b=True)
            # Empty slots (label -1) go to an extra segment that is dropped.
            segments = tf.where(bank.occupied(), bank.labels, bank.num_classes)
            class_sum_similarity = tf.transpose(tf.math.unsorted_segment_sum(
                tf.transpose(row_similarity), segments, bank.num_classes + 1)[:-1])
        else:
            class_sum_similarity = tf.matmul(embeddings, bank.class_sums, transpose_b=True)
        if self.scoring == "vmf":
            return _vmf_logits(class_sum_similarity, bank.class_sums, counts)
        return class_sum_similarity / tf.cast(tf.maximum(counts, 1), tf.float32)

    def _present(self, bank: MemoryBank) -> tf.Tensor:
        """The classes the scores compare, bool [C]: those in memory, or
        every class for proxies (each has one from the start)."""
        counts = tf.convert_to_tensor(bank.class_counts)
        return tf.ones_like(counts, tf.bool) if self.scoring == PROXIES else counts > 0

    def window_mean(self) -> tf.Tensor:
        """Mean of the thresholds now in the window (0 when it is empty)."""
        return self._mean_of_newest(self.window, self.window_count)

    def _pushed(self, window: tf.Tensor, count: tf.Tensor, value: tf.Tensor,
                add: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        """(window, count) with `value` as the newest entry where `add`, else as they are."""
        return (tf.where(add, tf.concat([window[1:], [value]], 0), window),
                tf.where(add, tf.minimum(count + 1, self.window_size), count))

    def _mean_of_newest(self, window: tf.Tensor, count: tf.Tensor) -> tf.Tensor:
        """Mean of the newest `count` entries of `window` (0 when count is 0)."""
        in_use = tf.range(self.window_size) >= self.window_size - count
        return tf.math.divide_no_nan(
            tf.reduce_sum(tf.where(in_use, window, 0.0)), tf.cast(count, tf.float32))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(noise_rate=self.noise_rate, window_size=self.window_size,
                      temperature=self.temperature, scoring=self.scoring,
                      max_noise_estimate=self.max_noise_estimate)
        return config


def _vmf_logits(class_similarity: tf.Tensor, class_sums: tf.Tensor,
                counts: tf.Tensor) -> tf.Tensor:
    """log C_D(kappa_k) + kappa_k mu_k . z for every sample and class [B, C].

    mu_k = s_k / |s_k| and the mean resultant length |s_k| / n_k come from
    the class sums s_k of n_k unit rows; `class_similarity` is z . s_k.
    Computed in float64 (the terms reach kappa ~ 1e7 for a class of one
    row), returned as float32; classes not in memory get finite junk that
    the caller masks out.
    """
    norms = tf.norm(tf.cast(class_sums, tf.float64), axis=1)
    kappa = vmf.concentration(tf.math.divide_no_nan(norms, tf.cast(counts, tf.float64)),
                              int(class_sums.shape[-1]))
    direction_similarity = tf.math.divide_no_nan(tf.cast(class_similarity, tf.float64),
                                                 norms[None, :])
    logits = vmf.log_normalizer(kappa, int(class_sums.shape[-1]))[None, :] + (
        kappa[None, :] * direction_similarity)
    return tf.cast(logits, tf.float32)
