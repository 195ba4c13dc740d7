"""The keys every config has, with the built-in synthetic experiment's values.

Each experiment file starts from `base_config()` and changes what differs,
so `--config.train.steps=...`-style overrides work the same everywhere.
The returned config is locked: an unknown key is an error.
"""

import ml_collections

from prism_tf import losses
from prism_tf.data import registry


def base_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    # The source by name, with each source's options under its own name
    # (their defaults are the loaders', prism_tf.data.registry.defaults), as
    # the loss group is: `--config.data.source=csv
    # --config.data.csv.data_dir=...`. An option another source reads is not
    # in this source's group, so it cannot be set and ignored.
    config.data = dict(
        source="synthetic",    # a key of prism_tf.data.SOURCES: synthetic | fashion_mnist |
                               # tfds | csv | folder
        **{name: registry.defaults(name) for name in sorted(registry.SOURCES)},
        seed=0,
        strict=False,          # corrupt images raise instead of being skipped
        # Label noise injected on purpose, opt-in: none | symmetric |
        # small_cluster; the rate is the share of training labels changed
        # (unused with none). Not selector.noise_rate, which PRISM assumes.
        injected_noise=dict(kind="none", rate=0.0),
        # A finder list (noisy_labels.csv) with verdicts filled in: its
        # `drop` rows leave training, `relabel` rows train with new_label
        # (prism_tf.data.verdicts); "" = none.
        verdicts="",
    )
    # prism_tf.data.pipeline.Preprocessing's arguments (its channels are the source's).
    config.preprocessing = dict(
        image_size=32,         # every image is resized to this (sizes found are printed)
        crop_scale=(0.2, 1.0), # training: random crop of this area share, then resize
        flip=True,             # training: random horizontal flips (not for text or digits)
        eval_resize=256 / 224, # evaluation: shorter side to image_size * this, centre crop
        mean=(0.485, 0.456, 0.406),  # () = no normalisation beyond [0, 1]
        std=(0.229, 0.224, 0.225),
    )
    # P x K batches: K images of each of P classes, P = train.batch_size / K.
    config.sampling = dict(samples_per_class=4)
    config.model = dict(
        encoder="small_cnn",   # small_cnn or a keras.applications class name
        embedding_dim=64,
        weights="",            # "" = random init; "imagenet" (needs the network) or
                               # a local Keras weights file (.h5 / .weights.h5)
        init_from="",          # fine-tuning: a training workdir (its latest
                               # checkpoint) or an export folder; its encoder's weights
    )
    config.train = dict(
        steps=600,
        batch_size=64,
        learning_rate=1e-3,
        eval_every=200,        # steps between retrieval evaluations and checkpoints
        scalars_every=10,      # steps between TensorBoard points of the step's logs
        jit_compile=False,
        # default: one device | mirrored: the local GPUs (else the logical
        # CPUs) | multi_worker: the workers in TF_CONFIG (docs/DISTRIBUTED.md);
        # batch_size is the global batch, split evenly across the replicas
        strategy="default",
        connect_timeout_s=300.0,  # multi_worker: how long the workers wait for each other
        proxy_learning_rate=0.1,  # proxy losses: Adam for the proxies (same decay; 0.1
                               # as the PRISM authors train SoftTriple's)
    )
    # Groups mirror what they build (big_vision style): `selector` is
    # PrismSelector's keyword arguments, `memory` the bank's size and how the
    # model uses it, `loss` the batch loss by name with each loss's arguments.
    config.selector = dict(
        # Share of wrong labels PRISM assumes; 0: no selection; "auto":
        # estimated online (prism_tf.PrismSelector). Any type, so that
        # --config.selector.noise_rate=auto parses.
        noise_rate=ml_collections.FieldReference(0.5, field_type=object),
        window_size=10,
        scoring="centers",     # centers | full | vmf (vMF-Sim, prism_tf.vmf) |
                               # proxies (ProxySim: a proxy loss's proxies)
        max_noise_estimate=0.7,  # the guard: keep all while the estimate is above it
        min_separability=0.9,  # keep all while clean labels rank above fewer wrong ones
        rate_at_most_estimate=True,  # a told rate drops at most the estimated share
    )
    config.memory = dict(
        size=2048,
        weight=0.0,            # memory loss weight; 0: the memory only scores samples
        start_step=0,          # before it the memory is neither used nor filled
        normalize=True,        # memory loss x batch / rows: weighs like one batch
                               # (False: the authors' sum over all rows)
    )
    # Each loss's arguments under its own name, so `--config.loss.name=...`
    # and `--config.loss.<name>.margin=...` both work on the locked config;
    # their defaults are the constructors' (prism_tf.losses.defaults), built
    # by prism_tf.losses.get.
    config.loss = dict(name="mcl",   # a key of prism_tf.losses.LOSSES
                       # a dropped sample stays the kept anchors' negative (a pair
                       # loss; PrismModel's dropped_as_negatives); False: the paper's
                       dropped_as_negatives=True,
                       **{name: losses.defaults(name) for name in sorted(losses.LOSSES)})
    config.eval = dict(batch_size=256, recall_at=(1, 2, 4, 8))
    return config
