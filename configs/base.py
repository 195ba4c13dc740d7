"""The keys every config has, with the built-in synthetic experiment's values.

Each experiment file starts from `base_config()` and changes what differs,
so `--config.train.steps=...`-style overrides work the same everywhere.
The returned config is locked: an unknown key is an error.
"""

import ml_collections


def base_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.data = dict(
        source="synthetic",    # synthetic | fashion_mnist | tfds | csv | folder
        name="",               # TFDS builder name (source=tfds)
        data_dir="",           # source folder; "" = the source's default
        train_list="",         # source=csv: 'path,label' lists; relative names and the
                               # paths inside them are under data_dir
        test_list="",
        clean_list="",         # source=csv: clean subset of train_list (ground truth)
        test_dir="",           # source=folder: test images (train: data_dir)
        seed=0,
        image_size=32,         # every image is resized to this (sizes found are printed)
        crop_scale=(0.2, 1.0), # training: random crop of this area share, then resize
        flip=True,             # training: random horizontal flips (not for text or digits)
        eval_resize=256 / 224, # evaluation: shorter side to image_size * this, centre crop
        mean=(0.485, 0.456, 0.406),  # () = no normalisation beyond [0, 1]
        std=(0.229, 0.224, 0.225),
        samples_per_class=4,   # K; P = train.batch_size / K
        strict=False,          # corrupt images raise instead of being skipped
        # Injected label noise, opt-in: none | symmetric | small_cluster; the
        # rate is the share of training labels changed (unused with none).
        noise=dict(kind="none", rate=0.0),
    )
    config.model = dict(
        encoder="small_cnn",   # small_cnn or a keras.applications class name
        embedding_dim=64,
        weights="",            # "" = random init; "imagenet" needs the network
    )
    config.train = dict(
        steps=600,
        batch_size=64,
        learning_rate=1e-3,
        eval_every=200,        # steps between retrieval evaluations and checkpoints
        jit_compile=False,
    )
    config.prism = dict(
        enabled=True,
        noise_rate=0.5,
        window_size=10,
        scoring="centers",
        memory_weight=0.0,     # 0: the memory only scores samples
        memory_start_step=0,
    )
    config.memory = dict(size=2048)
    config.loss = dict(name="mcl", margin=0.5)
    config.eval = dict(batch_size=256, recall_at=(1, 2, 4, 8))
    return config
