"""PRISM's clean-sample selection: clean probability and smooth top-R."""

from typing import Callable, Dict, Tuple, Union

import keras
import tensorflow as tf

from prism_tf import compat
from prism_tf.memory_bank import MemoryBank, check_labels
from prism_tf.scoring import SCORINGS

AUTO = "auto"
RANK_BINS = 8      # label ranks [0, 1] in bins of 1/8; the lowest holds rank 0
TAIL_CUTS = (4, 5, 6)   # Storey's tail cuts tried: ranks above 1/2, 5/8, 3/4
# The guards and the cap off: `PrismSelector(rate, **NO_GUARDS)` is the authors' selector.
NO_GUARDS = dict(max_noise_estimate=1.0, min_separability=0.5, rate_at_most_estimate=False)


# What each configurable argument must be: (test, what is expected). The one
# place these rules live: the constructor and the pipelines' config check
# read them, so the check needs no TensorFlow op (a multi-worker strategy
# must come before any).
ARGUMENT_RULES: Dict[str, Tuple[Callable[[object], bool], str]] = {
    "noise_rate": (lambda v: v == AUTO or (isinstance(v, (int, float)) and 0.0 <= v < 1.0),
                   f"a rate in [0, 1) (0: nothing removed) or {AUTO!r}"),
    "window_size": (lambda v: isinstance(v, int) and v >= 1, "a positive integer"),
    "temperature": (lambda v: isinstance(v, (int, float)) and v > 0, "a number > 0"),
    "scoring": (lambda v: v in SCORINGS, "one of the names in prism_tf.scoring.SCORINGS"),
    "max_noise_estimate": (lambda v: isinstance(v, (int, float)) and 0.0 < v <= 1.0,
                           "a share in (0, 1] (1: no guard)"),
    "min_separability": (lambda v: isinstance(v, (int, float)) and 0.5 <= v <= 1.0,
                         "a value in [0.5, 1] (0.5: no such guard)"),
    "rate_at_most_estimate": (lambda v: isinstance(v, bool), "True or False"),
}


def argument_problem(name: str, value: object) -> Union[str, None]:
    """What `PrismSelector`'s argument `name` must be, if `value` is not
    that (None if it is).

    >>> argument_problem("noise_rate", 0.0) is None
    True
    >>> argument_problem("noise_rate", 1.5)
    "a rate in [0, 1) (0: nothing removed) or 'auto'"
    """
    test, expected = ARGUMENT_RULES[name]
    if test(value):
        return None
    return expected + (f" {sorted(SCORINGS)}" if name == "scoring" else "")


def _rank_bin(label_rank: tf.Tensor) -> tf.Tensor:
    """Bin b holds ranks in (b / RANK_BINS, (b + 1) / RANK_BINS], bin 0 also 0."""
    return tf.clip_by_value(tf.cast(tf.math.ceil(label_rank * RANK_BINS), tf.int32) - 1,
                            0, RANK_BINS - 1)


def _pushed_row(window: tf.Tensor, row: tf.Tensor, add: tf.Tensor) -> tf.Tensor:
    """`window` with `row` as its newest (last) entry where `add`, else as it is."""
    return tf.where(add, tf.concat([window[1:], row[None]], 0), window)


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
    the model. With `rate_at_most_estimate` (not in the paper) r uses the
    smaller of noise_rate and the noise estimate below.

    The noise estimate (not in the paper; it drives `noise_rate="auto"` and
    the guard). `label_rank` u in [0, 1] is the share of the other classes in
    memory that the sample's centre logits rank above its own label: low for
    a clean label, and uniform, as a p-value under its null, for a label
    drawn at random among the wrong classes, however weak the encoder. The
    ranks of the last `window_size` scored batches are counted in
    `RANK_BINS` bins; the share of wrong labels is the level of their flat
    upper tail (Storey's null proportion, at the tail cut among `TAIL_CUTS`
    that bounds it tightest; `_rank_mixture`). Clean samples that the memory
    misranks can only push it up, so it is an upper bound, tight when the
    memory tells the classes apart, and 1 when it cannot. `separability` is
    a ground-truth-free signal of how well the memory can judge labels at
    all: the clean labels' ROC AUC against wrong ones, 1 - their mean rank,
    which is the window's mean rank with the estimated wrong share taken
    out (an over-estimated share makes it look higher).

    The guards (not in the paper), for told rates and `auto` alike: while
    the estimate is above `max_noise_estimate` or the separability below
    `min_separability`, the memory cannot tell a labelled class from a
    random one well enough (early training, a weak encoder, hard
    fine-grained classes, or more wrong labels than PRISM handles): its
    ranking would drop clean samples nearly as often as wrong ones, and
    every sample is kept (no threshold enters the window). On a hard
    fine-grained set smooth top-R told 50% without them cost TripletSemiHard
    6.6 P@1 against no selection, at a separability of 0.80 (0.96 on the
    synthetic set, where it helps; docs/BENCHMARKS.md, "Hard sets").

    `noise_rate="auto"` (`select_by_rank`; not in the paper) drops a sample
    where its label rank is more likely a wrong label's than a clean one's
    (the rank mixture's posterior above 1/2), once `window_size` batches
    have been scored. Where the encoder is weak, clean ranks spread over the
    low and middle ranks, the posterior there stays low, and those samples
    are kept: dropping a share equal to the estimate, as an earlier version
    did, dropped hard clean samples and cost 3 P@1 with clean labels
    (docs/BENCHMARKS.md, "Hard sets").

    Args:
      noise_rate: expected share of wrong labels R, in [0, 1), or "auto".
      window_size: number of past thresholds (and noise estimates) averaged (tau).
      temperature: divides the logits.
      scoring: how a sample is scored against each class, a name in
        `prism_tf.scoring.SCORINGS`: "centers" (PRISM's AvgSim in its
        accelerated form, one [B, C] matmul), "full" (average similarity to
        every memory row of the class; the same numbers, for comparison),
        "vmf" (vMF-Sim, the journal version) or "proxies" (ProxySim, the
        journal version: a proxy batch loss's proxies stand for the
        classes; `attach` hands the loss over, as `PrismModel` does).
      max_noise_estimate: the first guard's limit, in (0, 1]; 1 turns it off.
      min_separability: every sample is kept while `separability()` is
        below it, in [0.5, 1]; 0.5 turns it off.
      rate_at_most_estimate: a told rate drops at most the estimated share
        (`noise_estimate()`, an upper bound of the wrong labels' share):
        told 10% on clean labels, smooth top-R dropped the hardest 10% of
        every batch and cost TripletSemiHard 1.0 P@1 on a hard set (0.361
        against 0.371); with the cap it drops nothing there (0.370).
        `NO_GUARDS` turns it and both guards off.

    Example:

    >>> bank = MemoryBank(size=8, dim=2, num_classes=2)
    >>> bank.enqueue([[1., 0.], [0., 1.]], [0, 1])
    >>> selector = PrismSelector(noise_rate=0.5, window_size=5)
    >>> weights, logs = selector([[1., 0.], [1., 0.]], [0, 1], bank)
    >>> weights.numpy().tolist(), sorted(logs)
    ([1.0, 0.0], ['noise_estimate', 'separability', 'threshold'])
    """

    def __init__(self, noise_rate: Union[float, str], window_size: int = 30,
                 temperature: float = 1.0, scoring: str = "centers",
                 max_noise_estimate: float = 0.7, min_separability: float = 0.9,
                 rate_at_most_estimate: bool = True, **kwargs):
        arguments = dict(noise_rate=noise_rate, window_size=window_size,
                         temperature=temperature, scoring=scoring,
                         max_noise_estimate=max_noise_estimate,
                         min_separability=min_separability,
                         rate_at_most_estimate=rate_at_most_estimate)
        for name, value in arguments.items():
            expected = argument_problem(name, value)
            if expected:
                raise ValueError(f"PrismSelector: {name} must be {expected}; got {value!r}")
        kwargs.setdefault("dtype", "float32")
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.noise_rate = noise_rate if noise_rate == AUTO else float(noise_rate)
        self.window_size = window_size
        self.temperature = float(temperature)
        self.scoring = scoring
        # A plain object, not tracked: what it holds (a proxy loss) is the model's.
        self._scoring = SCORINGS[scoring]()
        self.max_noise_estimate = float(max_noise_estimate)
        self.min_separability = float(min_separability)
        self.rate_at_most_estimate = rate_at_most_estimate
        # Per scored batch, newest last: how many label ranks fall in each of
        # RANK_BINS bins, how many a wrong label would put there, their sum,
        # and the sum wrong labels would have.
        self._rank_counts = self.add_weight(
            name="rank_counts", shape=(window_size, RANK_BINS), initializer="zeros",
            trainable=False)
        self._wrong_counts = self.add_weight(
            name="wrong_label_counts", shape=(window_size, RANK_BINS), initializer="zeros",
            trainable=False)
        self._rank_sums = self.add_weight(
            name="rank_sums", shape=(window_size,), initializer="zeros", trainable=False)
        self._wrong_rank_sums = self.add_weight(
            name="wrong_label_rank_sums", shape=(window_size,), initializer="zeros",
            trainable=False)
        self._scored_batches = self.add_weight(
            name="scored_batches", shape=(), dtype="int32", initializer="zeros",
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

    def attach(self, batch_loss) -> None:
        """Hands the model's batch loss to the scoring (ProxySim scores with
        its proxies; the others need nothing)."""
        self._scoring.attach(batch_loss)

    # Not `call`: Keras 3 layers take only tensors as positional arguments,
    # and the selector needs the bank. Nothing here needs Layer.__call__.
    def __call__(self, embeddings, labels, bank: MemoryBank,
                 gather: Callable[[tf.Tensor], tf.Tensor] = tf.identity,
                 active=True, advance=True) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
        """Scores, observes and selects one batch: (weights float32 [B'],
        logs {"threshold", "noise_estimate", "separability"}).

        The weights are 0/1 (a 0 drops a sample without changing shapes).
        `gather` maps a replica's per-sample values to the global batch's
        [B'] (`prism_tf.replicas.GlobalBatch.gather`; the identity on one
        device): each replica scores its own rows and all select on the
        whole batch. While `active` is false (the memory has not started)
        every sample is kept and nothing is observed. The windows move only
        if `advance` (a refused training step leaves them as they were).
        """
        # The gathers are collectives, so they stay outside the tf.cond.
        p_clean, label_rank = (gather(score) for score in self.scores(embeddings, labels, bank))

        def select():
            self.observe(label_rank, bank, advance)
            # Read here, after the update: under XLA a read after the tf.cond
            # may see the window as it was before it.
            mixture = self._rank_mixture()
            keep, threshold = (self._select_by_rank(label_rank, mixture)
                               if self.noise_rate == AUTO
                               else self._select(p_clean, advance, mixture))
            return tf.cast(keep, tf.float32), threshold, mixture[0], mixture[2]

        def keep_all():
            estimate, _, separability = self._rank_mixture()
            return tf.ones_like(p_clean), tf.constant(0.0), estimate, separability

        weights, threshold, estimate, separability = tf.cond(
            tf.convert_to_tensor(active), select, keep_all)
        return weights, {"threshold": threshold, "noise_estimate": estimate,
                         "separability": separability}

    def clean_probability(self, embeddings, labels, bank: MemoryBank) -> tf.Tensor:
        """P(label is clean) for each sample [B], from the memory as it is now."""
        return self.scores(embeddings, labels, bank)[0]

    def scores(self, embeddings, labels, bank: MemoryBank) -> Tuple[tf.Tensor, tf.Tensor]:
        """(p_clean [B], label_rank [B]) from the memory (or the proxies) as
        they are now.

        `label_rank` is the share of the other classes compared whose logit
        is above the label's (ties count half), or -1 where it says
        nothing: the label's class is not in memory, or no other class is.
        """
        labels = check_labels(labels, bank.num_classes, "PrismSelector")
        embeddings = tf.cast(tf.convert_to_tensor(embeddings), tf.float32)
        present = self._scoring.present(bank)
        logits = self._scoring.logits(embeddings, bank) / self.temperature
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
        """The estimated share of wrong labels over the last `window_size`
        scored batches (1 while none has been scored: nothing is known yet)."""
        return self._rank_mixture()[0]

    def separability(self) -> tf.Tensor:
        """How well the memory tells clean labels from wrong ones, from the
        ranks alone: the chance that a wrong label ranks below a clean one
        (the ROC AUC of their ranks), 1 - the clean labels' mean rank, which
        is the window's with the estimated wrong share's expected ranks
        taken out. 1 when every clean label ranks first, whatever the noise;
        1/2 when the ranks are random (and while nothing is known)."""
        return self._rank_mixture()[2]

    def observe(self, label_rank, bank: MemoryBank, advance=True) -> tf.Tensor:
        """Adds one batch's label ranks to the window (if `advance` and the
        batch has ranked samples); returns the batch's count of them."""
        label_rank = tf.reshape(tf.cast(label_rank, tf.float32), [-1])
        ranked = label_rank >= 0.0
        count = tf.reduce_sum(tf.cast(ranked, tf.float32))
        bins = _rank_bin(label_rank)
        counts = tf.reduce_sum(tf.one_hot(bins, RANK_BINS) * tf.cast(ranked, tf.float32)[:, None],
                               axis=0)
        # A wrong label's rank with m other classes, the true one ranking
        # first: u = (1 + j) / m, j uniform in 0..m-1, so exactly
        # (m - floor(m b / BINS)) / m of wrong labels have u > b / BINS.
        others = tf.cast(tf.math.count_nonzero(self._scoring.present(bank)), tf.float32) - 1.0
        edges = tf.range(RANK_BINS + 1, dtype=tf.float32) / RANK_BINS
        wrong_tail = tf.math.divide_no_nan(others - tf.floor(others * edges + 1e-6), others)
        wrong = count * (wrong_tail[:-1] - wrong_tail[1:])
        add = tf.logical_and(advance, count > 0)
        self._rank_counts.assign(_pushed_row(self._rank_counts, counts, add))
        self._wrong_counts.assign(_pushed_row(self._wrong_counts, wrong, add))
        # The wrong labels' mean rank, that of u above: (m + 1) / (2 m).
        wrong_rank_sum = count * tf.math.divide_no_nan(others + 1.0, 2.0 * others)
        self._wrong_rank_sums.assign(_pushed_row(self._wrong_rank_sums, wrong_rank_sum, add))
        rank_sums, scored_batches = self._pushed(
            self._rank_sums, self._scored_batches,
            tf.reduce_sum(tf.where(ranked, label_rank, 0.0)), add)
        self._rank_sums.assign(rank_sums)
        self._scored_batches.assign(scored_batches)
        return count

    def _rank_mixture(self) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(noise estimate, wrong-label posterior per rank bin [RANK_BINS],
        separability) of the windowed label ranks.

        The ranks are a mixture: wrong labels spread evenly (their expected
        counts per bin are known exactly), clean ones pile up at the low
        ranks, more or less tightly as the memory tells classes apart. Each
        bin's count over its wrong-label count, fitted non-increasing
        (isotonic regression), is the mixture's density against the wrong
        labels'; where it is flat, only wrong labels are there, so its level
        in the upper half is the share of wrong labels (Storey's estimator at
        the tail cut that bounds it tightest; every cut is an upper bound,
        clean samples the memory misranks add to it). A bin's posterior is
        that share over its fitted density.
        """
        observed = tf.reduce_sum(self._rank_counts, axis=0)
        wrong = tf.reduce_sum(self._wrong_counts, axis=0)
        total = tf.reduce_sum(observed)
        # With fewer than RANK_BINS other classes some bins no wrong label
        # can reach (rank 0, for one): they say nothing about the mixture.
        observed = tf.where(wrong > 0, observed, 0.0)
        # Pooled ratios over every run of bins a..c: [a, c].
        observed_sums = tf.concat([[0.0], tf.cumsum(observed)], 0)
        wrong_sums = tf.concat([[0.0], tf.cumsum(wrong)], 0)
        pooled = tf.math.divide_no_nan(observed_sums[None, 1:] - observed_sums[:-1, None],
                                       wrong_sums[None, 1:] - wrong_sums[:-1, None])
        index = tf.range(RANK_BINS)
        # Non-increasing isotonic fit: f_b = min over a <= b of max over c >= b.
        upper = tf.reduce_max(tf.where(index[None, None, :] >= index[None, :, None],
                                       pooled[:, None, :], -float("inf")), axis=2)
        density = tf.reduce_min(tf.where(index[:, None] <= index[None, :], upper,
                                         float("inf")), axis=0)
        tail_cuts = tf.gather(pooled[:, -1], TAIL_CUTS)
        known = total > 0
        estimate = tf.where(known, tf.clip_by_value(tf.reduce_min(tail_cuts), 0.0, 1.0), 1.0)
        posterior = tf.where(known, tf.minimum(tf.math.divide_no_nan(estimate, density), 1.0),
                             0.0)
        # The clean labels' own mean rank: the window's rank sum less the
        # estimated wrong share of what wrong labels would sum to, over the
        # estimated clean count. 1 - it is P(a wrong label ranks below a
        # clean one): the ROC AUC of clean against wrong labels' ranks.
        clean_mean_rank = tf.clip_by_value(tf.math.divide_no_nan(
            tf.reduce_sum(self._rank_sums) - estimate * tf.reduce_sum(self._wrong_rank_sums),
            (1.0 - estimate) * total), 0.0, 0.5)
        separability = tf.where(known & (estimate < 1.0), 1.0 - clean_mean_rank, 0.5)
        return estimate, posterior, separability

    def _can_judge(self, mixture) -> tf.Tensor:
        """The guards, both noise rates: whether the window's ranks say the
        memory tells a labelled class from a random one (estimate at most
        `max_noise_estimate`, separability at least `min_separability`)."""
        estimate, _, separability = mixture
        return (estimate <= self.max_noise_estimate) & (separability >= self.min_separability)

    def select_by_rank(self, label_rank) -> Tuple[tf.Tensor, tf.Tensor]:
        """`noise_rate="auto"`'s rule: drops the samples whose label rank
        falls where a wrong label is more likely than a clean one (posterior
        above 1/2), once `window_size` batches have been scored and while
        the guard is open. Returns (keep bool [B], the rank cut: samples
        ranked above it were dropped; 1 when none could be)."""
        return self._select_by_rank(label_rank, self._rank_mixture())

    def _select_by_rank(self, label_rank, mixture) -> Tuple[tf.Tensor, tf.Tensor]:
        """`select_by_rank` with the window's `_rank_mixture()` already computed."""
        label_rank = tf.reshape(tf.cast(label_rank, tf.float32), [-1])
        _, posterior, _ = mixture
        dropped_bins = posterior > 0.5
        dropping = (self._scored_batches >= self.window_size) & self._can_judge(mixture)
        dropped = tf.logical_and(dropping, tf.logical_and(
            label_rank >= 0.0, tf.gather(dropped_bins, _rank_bin(label_rank))))
        first_dropped = tf.reduce_min(tf.where(dropped_bins, tf.range(RANK_BINS), RANK_BINS))
        cut = tf.where(dropping, tf.cast(first_dropped, tf.float32) / RANK_BINS, 1.0)
        return tf.logical_not(dropped), cut

    def select(self, p_clean, advance=True) -> Tuple[tf.Tensor, tf.Tensor]:
        """Smooth top-R on one batch; advances the window state if `advance`
        (a bool or bool tensor: a refused training step leaves it as it was).

        Returns:
          keep: bool [B].
          threshold: the window mean used, or q when plain top-R decided, or
            0 when r = 0 (nothing is removed).
        """
        if self.noise_rate == AUTO:
            raise ValueError("PrismSelector(noise_rate='auto') selects by label rank "
                             "(select_by_rank), not by a rate")
        return self._select(p_clean, advance, self._rank_mixture())

    def _select(self, p_clean, advance, mixture) -> Tuple[tf.Tensor, tf.Tensor]:
        """`select` with the window's `_rank_mixture()` already computed."""
        p_clean = tf.reshape(tf.cast(p_clean, tf.float32), [-1])
        batch = tf.size(p_clean)
        rate = tf.constant(self.noise_rate)
        if self.rate_at_most_estimate:
            rate = tf.minimum(rate, mixture[0])
        rate = tf.where(self._can_judge(mixture), rate, 0.0)
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

    def window_mean(self) -> tf.Tensor:
        """Mean of the thresholds now in the window (0 when it is empty)."""
        return self._mean_of_newest(self.window, self.window_count)

    def _pushed(self, window: tf.Tensor, count: tf.Tensor, value: tf.Tensor,
                add: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        """(window, count) with `value` as the newest entry where `add`, else as they are."""
        return (_pushed_row(window, value, add),
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
                      max_noise_estimate=self.max_noise_estimate,
                      min_separability=self.min_separability,
                      rate_at_most_estimate=self.rate_at_most_estimate)
        return config
