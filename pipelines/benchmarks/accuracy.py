r"""Benchmark: retrieval accuracy under label noise, methods side by side.

    python -m pipelines.benchmarks.accuracy --config=configs/noise_benchmark.py:synthetic \
        --root=runs/accuracy-synthetic --seeds=0,1,2

Runs `pipelines.train` for every (method, noise, seed) in its own workdir
under --root (finished runs report their saved metrics, interrupted ones
resume, a workdir of another config is refused), then
writes a Markdown table of P@1 and MAP@R (mean ± standard deviation over
seeds) with PRISM's kept purity and noise recall.

Methods (config overrides on top of --config):
- xbm: MCL on the batch and on the memory, no selection.
- mcl_prism: the same with PRISM selection.
- semihard: TripletSemiHard on the batch, no memory loss, no selection.
- semihard_prism: TripletSemiHard on the kept samples; the memory only scores,
  from step 0 (the config's `memory.start_step` is a warm-up for the
  memory loss, so only the mcl methods keep it).
- mcl_prism_auto, semihard_prism_auto: the same with `noise_rate="auto"`.
- soft_triple, proxy_anchor (and _prism): the proxy losses
  (`prism_tf.proxy_losses`) as semihard, only when named; with
  `--config.selector.scoring=proxies` PRISM scores with their proxies
  (ProxySim) instead of the memory's class centres (AvgSim).
- untrained: the encoder as initialised, not trained (a floor: on easy
  data such as Fashion-MNIST a random CNN already retrieves well).
PRISM's `selector.noise_rate` is the injected rate, or --clean_noise_rate for
clean labels ("auto" for the _auto methods); methods without selection set
it to 0.
"""

import dataclasses
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from absl import app, flags, logging
import keras
import ml_collections
from ml_collections import config_flags

from .. import cli, factories
from ..runs import encoder_start, load_splits
from .common import mean_std
from ..train import train
from prism_tf.files import write_atomically
from prism_tf.proxy_losses import PROXY_LOSSES
from prism_tf.selector import AUTO

FLAGS = flags.FLAGS
METHODS = {
    "xbm": dict(loss="mcl", prism=False, memory_weight=1.0),
    "mcl_prism": dict(loss="mcl", prism=True, memory_weight=1.0),
    "mcl_prism_auto": dict(loss="mcl", prism=AUTO, memory_weight=1.0),
    "semihard": dict(loss="triplet_semihard", prism=False, memory_weight=0.0),
    "semihard_prism": dict(loss="triplet_semihard", prism=True, memory_weight=0.0),
    "semihard_prism_auto": dict(loss="triplet_semihard", prism=AUTO, memory_weight=0.0),
    "soft_triple": dict(loss="soft_triple", prism=False, memory_weight=0.0),
    "soft_triple_prism": dict(loss="soft_triple", prism=True, memory_weight=0.0),
    "proxy_anchor": dict(loss="proxy_anchor", prism=False, memory_weight=0.0),
    "proxy_anchor_prism": dict(loss="proxy_anchor", prism=True, memory_weight=0.0),
}
UNTRAINED = "untrained"
# The proxy losses' rows are asked for by name (--methods).
DEFAULT_METHODS = [UNTRAINED, *(name for name, method in METHODS.items()
                                if method["loss"] not in PROXY_LOSSES)]
NOISE_SETTINGS = ("none:0", "symmetric:0.2", "symmetric:0.5", "small_cluster:0.25",
                  "small_cluster:0.5")


def _define_flags() -> None:
    config_flags.DEFINE_config_file("config", None, "Base experiment config.", lock_config=True)
    flags.DEFINE_string("root", None, "Folder holding one workdir per run.")
    flags.DEFINE_list("methods", DEFAULT_METHODS,
                      f"Methods, from {sorted([UNTRAINED, *METHODS])}.")
    flags.DEFINE_list("noise", list(NOISE_SETTINGS), "kind:rate settings.")
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (data, noise and model).")
    flags.DEFINE_float("clean_noise_rate", 0.1, "PRISM's noise_rate when labels are clean.")
    flags.DEFINE_string("output", None, "Markdown file for the table (printed either way).")


@dataclasses.dataclass(frozen=True)
class Run:
    method: str
    noise_kind: str
    noise_rate: float
    seed: int

    @property
    def name(self) -> str:
        return f"{self.method}-{self.noise_kind}-{self.noise_rate:g}-seed{self.seed}"


def run_config(base: ml_collections.ConfigDict, run: Run,
               clean_noise_rate: float) -> ml_collections.ConfigDict:
    """`base` with the method's and the noise setting's overrides."""
    # Field references kept: selector.noise_rate takes a rate or "auto".
    config = ml_collections.ConfigDict(base.to_dict(preserve_field_references=True))
    method = METHODS[run.method]
    config.loss.name = method["loss"]
    config.memory.weight = method["memory_weight"]
    if not method["memory_weight"]:
        config.memory.start_step = 0
    config.data.injected_noise.kind = run.noise_kind
    config.data.injected_noise.rate = run.noise_rate
    assumed = run.noise_rate if run.noise_rate > 0 else clean_noise_rate
    config.selector.noise_rate = (AUTO if method["prism"] == AUTO
                                  else assumed if method["prism"] else 0.0)
    config.data.seed = run.seed
    config.lock()
    return config


def untrained_metrics(config: ml_collections.ConfigDict) -> Dict[str, float]:
    """Test-split retrieval metrics of the encoder as `train` would initialise it."""
    train_split, test_split = load_splits(config)
    keras.utils.set_random_seed(config.data.seed)
    preprocessing = factories.preprocessing(config).for_split(train_split)
    model = factories.build_model(config, train_split.num_classes, preprocessing.channels,
                                  encoder_start(config))
    return factories.retrieval_on(test_split, config,
                                  lambda images: model(images, training=False))


def parse_noise(setting: str) -> Tuple[str, float]:
    kind, _, rate = setting.partition(":")
    try:
        return kind, float(rate or 0)
    except ValueError:
        raise ValueError(f"--noise entry {setting!r}: expected kind:rate, e.g. symmetric:0.5")



MEMORY_START = "precision_at_1_at_memory_start"


def table(results: Dict[Run, Dict[str, float]]) -> str:
    """Markdown: one row per (method, noise), statistics over seeds.

    "P@1 at memory start" is the evaluation at the step the memory loss
    started (mcl methods whose memory starts after step 0 and at an
    evaluation step); "-" elsewhere.
    """
    groups: Dict[Tuple[str, str, float], List[Dict[str, float]]] = {}
    for run, metrics in results.items():
        groups.setdefault((run.method, run.noise_kind, run.noise_rate), []).append(metrics)
    lines = ["| method | noise | seeds | P@1 | P@1 at memory start | MAP@R | kept purity "
             "| noise recall | kept fraction | noise estimate | separability |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for (method, kind, rate), runs in groups.items():
        cells = [mean_std([m[key] for m in runs if key in m])
                 for key in ("precision_at_1", MEMORY_START, "map_at_r", "kept_purity")]
        # With clean labels there is no noise to recall.
        cells.append(mean_std([m["noise_recall"] for m in runs]) if rate > 0 else "n/a")
        cells += [mean_std([m[key] for m in runs if key in m])
                  for key in ("kept_fraction", "noise_estimate", "separability")]
        lines.append(f"| {method} | {kind} {rate:g} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def with_memory_start(metrics: Dict[str, float],
                      config: ml_collections.ConfigDict) -> Dict[str, float]:
    """`metrics` plus the P@1 at the step the memory loss started, where
    that step is after 0 and was evaluated."""
    start = config.memory.start_step
    key = f"precision_at_1_step_{start}"
    if config.memory.weight and start and key in metrics:
        return {**metrics, MEMORY_START: metrics[key]}
    return metrics


def benchmark(base: ml_collections.ConfigDict, root: str, methods: Sequence[str],
              noise: Sequence[str], seeds: Sequence[int],
              clean_noise_rate: float = 0.1) -> Dict[Run, Dict[str, float]]:
    """Trains (or reuses) every run and returns its final metrics; the
    untrained rows are evaluated without training (or a workdir)."""
    for method in methods:
        if method not in METHODS and method != UNTRAINED:
            raise ValueError(f"unknown method {method!r}; expected one of "
                             f"{sorted([UNTRAINED, *METHODS])}")
    settings = [parse_noise(setting) for setting in noise]
    results = {}
    for method in methods:
        if method == UNTRAINED:  # labels are not used: one row, not one per noise setting
            for seed in seeds:
                config = ml_collections.ConfigDict(base.to_dict())
                config.data.seed = int(seed)
                config.data.injected_noise.kind, config.data.injected_noise.rate = "none", 0.0
                results[Run(UNTRAINED, "none", 0.0, int(seed))] = untrained_metrics(config)
            continue
        for kind, rate in settings:
            for seed in seeds:
                run = Run(method, kind, rate, int(seed))
                logging.info("Run %s", run.name)
                config = run_config(base, run, clean_noise_rate)
                results[run] = with_memory_start(
                    train(config, str(Path(root) / run.name), verbose=0), config)
    return results


def main(argv):
    del argv
    if FLAGS.config is None or not FLAGS.root:
        raise app.UsageError("--config and --root are required")
    with cli.one_line_errors():
        results = benchmark(FLAGS.config, FLAGS.root, FLAGS.methods, FLAGS.noise,
                            [int(s) for s in FLAGS.seeds], FLAGS.clean_noise_rate)
    markdown = table(results)
    print(markdown)
    if FLAGS.output:
        write_atomically(Path(FLAGS.output), markdown)


if __name__ == "__main__":
    cli.run(main, _define_flags)
