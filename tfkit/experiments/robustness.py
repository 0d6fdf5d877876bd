"""ViT vs ResNet robustness (Bhojanapalli et al., ICCV 2021) at CIFAR-10 scale.

Stages: train a small ViT and a CIFAR ResNet (resumable), then for each model run every suite
of `tfkit.robustness` (clean + ECE, 15 corruptions x 5 severities, FGSM/PGD, worst-of-grid
rotations/translations, patch perturbations, block / sub-layer removal, restricted attention,
layer CKA), then write tables, plots and report.md (`tfkit.robustness.report`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tfkit import datasets
from tfkit.backend import keras, set_seed, tf
from tfkit.config import ConfigError, require_at_least
from tfkit.experiments.base import Experiment, Headline
from tfkit.models import ResNet, ViT
from tfkit.robustness import registry
from tfkit.robustness.report import collect, write_report
from tfkit.runs import RunDir
from tfkit.training import fit_resumable

MODELS = ("vit", "resnet")
SUITES = ("clean", "corruptions", "adversarial", "spatial", "patch", "layers")  # layers: + CKA


@dataclass(frozen=True)
class Config:
    """Train a ViT and a ResNet on CIFAR-10, then run every robustness suite on both.

    Full run: `TFKIT_DATA_DIR=../shared/data uv run tfkit run robustness --out runs/robustness`.
    Quick (the acceptance run, ≤ 20 min on 2 idle cores): add `--quick`. Expected at this scale:
    ResNet above ViT on clean accuracy and mCE (the paper's ViT advantage needs large-scale
    pre-training); both near 0 % under PGD at 4/255; most single ViT blocks except the first
    removable at a small cost.
    """

    seed: int = 0
    data_dir: str | None = None
    dataset: str = "cifar10"
    train_examples: int = 20_000  # the shared CIFAR-10 copy has 20,000 train images
    eval_examples: int = 1000  # test images every suite runs on
    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 1e-3  # AdamW peak, cosine-decayed to 0; fine for both models
    weight_decay: float = 1e-4
    augment: bool = True  # random crop (4 px padding) + horizontal flip
    # ViT
    patch_size: int = 4  # 32x32 -> 64 patches + [CLS]
    vit_layers: int = 6
    vit_hidden_dim: int = 128
    vit_heads: int = 4
    vit_mlp_dim: int = 256
    # ResNet: CIFAR layout, blocks per stage (3 = ResNet-20, 9 = ResNet-56)
    resnet_blocks: int = 3
    resnet_widths: tuple[int, ...] = (16, 32, 64)
    # suites
    severities: tuple[int, ...] = (1, 2, 3, 4, 5)
    linf_epsilons: tuple[float, ...] = (0.5 / 255, 1 / 255, 2 / 255, 4 / 255)
    l2_epsilons: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5)
    pgd_steps: int = 10
    rotations: tuple[float, ...] = (-30.0, -15.0, 0.0, 15.0, 30.0)
    translations: tuple[int, ...] = (-3, 0, 3)  # pixels (about 10 % of 32)
    cka_examples: int = 500

    def __post_init__(self) -> None:
        if self.dataset not in datasets.IMAGE_SIDES:
            raise ConfigError(f"dataset must be one of {sorted(datasets.IMAGE_SIDES)}, got "
                              f"{self.dataset!r}")
        require_at_least(self, ("train_examples", "eval_examples", "epochs", "batch_size",
                                "patch_size", "vit_layers", "vit_hidden_dim", "vit_heads",
                                "vit_mlp_dim", "resnet_blocks", "pgd_steps"))
        require_at_least(self, ("cka_examples",), minimum=2)
        if not 0 < self.learning_rate < math.inf or not 0 <= self.weight_decay < math.inf:
            raise ConfigError(f"learning_rate must be > 0 and weight_decay >= 0, got "
                              f"{self.learning_rate} and {self.weight_decay}")
        if not self.resnet_widths or min(self.resnet_widths) < 1:
            raise ConfigError(f"resnet_widths must be one or more positive ints, got "
                              f"{self.resnet_widths}")
        if not self.severities or not set(self.severities) <= {1, 2, 3, 4, 5}:
            raise ConfigError(f"severities must be in 1..5, got {self.severities}")
        for name in ("linf_epsilons", "l2_epsilons"):  # empty: that attack is skipped
            values = getattr(self, name)
            if not all(0 < v < math.inf for v in values):
                raise ConfigError(f"{name} must be numbers > 0, got {values}")
        if not self.linf_epsilons and not self.l2_epsilons:
            raise ConfigError("linf_epsilons and l2_epsilons are both empty: give at least "
                              "one epsilon")
        if not self.rotations or not self.translations:
            raise ConfigError("rotations and translations need at least one value each "
                              "(0 for none)")


def check(config: Config) -> None:
    """The checks across fields (after every --set, see `Experiment.check`)."""
    side = datasets.IMAGE_SIDES[config.dataset]
    if side % config.patch_size:
        raise ConfigError(f"patch_size {config.patch_size} does not divide the {side} px "
                          f"images of {config.dataset}")
    if config.vit_hidden_dim % config.vit_heads:
        raise ConfigError(f"vit_hidden_dim {config.vit_hidden_dim} is not divisible by "
                          f"vit_heads {config.vit_heads}")


def _load(config: Config) -> tuple[datasets.ImageDataset, np.ndarray, np.ndarray, np.ndarray,
                                   np.ndarray]:
    data = datasets.load(config.dataset, config.data_dir)
    rng = np.random.default_rng(config.seed)
    tr = rng.permutation(len(data.train))[:config.train_examples]
    te = rng.permutation(len(data.test))[:config.eval_examples]
    xtr, xte = (_float(data.train.x[tr]), _float(data.test.x[te]))
    return data, xtr, data.train.y[tr], xte, data.test.y[te]


def _float(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32) / 255.0
    return x[..., None] if x.ndim == 3 else x


def _train_dataset(config: Config, x: np.ndarray, y: np.ndarray) -> tf.data.Dataset:
    pad = max(1, x.shape[1] // 8)  # 4 px at 32 px

    def augment(img, label):
        h, w, c = x.shape[1:]
        img = tf.image.random_crop(tf.pad(img, [[pad, pad], [pad, pad], [0, 0]], "REFLECT"),
                                   [h, w, c])
        return tf.image.random_flip_left_right(img), label

    ds = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int64)))
    ds = ds.shuffle(len(x), seed=config.seed)
    if config.augment:
        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(config.batch_size).prefetch(tf.data.AUTOTUNE)


def build_model(config: Config, kind: str, image_shape: tuple[int, ...], classes: int
                ) -> keras.Model:
    """The ViT or ResNet of `config` for images of `image_shape`."""
    if kind == "vit":
        return ViT(image_size=image_shape[0], patch_size=config.patch_size,
                   num_layers=config.vit_layers, hidden_dim=config.vit_hidden_dim,
                   num_heads=config.vit_heads, intermediate_dim=config.vit_mlp_dim,
                   num_classes=classes, channels=image_shape[-1], name="vit")
    widths = config.resnet_widths
    return ResNet([config.resnet_blocks] * len(widths), widths, num_classes=classes,
                  channels=image_shape[-1], weight_decay=0.0, name="resnet")


def _train(config: Config, run_dir: RunDir, kind: str, data, xtr, ytr, xte, yte) -> dict:
    set_seed(config.seed)
    model = build_model(config, kind, xtr.shape[1:], data.num_classes)
    steps = config.epochs * -(-len(xtr) // config.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, steps)
    model.compile(keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"])
    history = fit_resumable(model, _train_dataset(config, xtr, ytr), epochs=config.epochs,
                            directory=run_dir.checkpoint_dir(kind), log=run_dir.log, verbose=2)
    accuracy = float(model.evaluate(xte, yte, batch_size=256, verbose=0)[1])
    run_dir.save_model(model, kind, {
        "kind": "image_classifier", "dataset": config.dataset, "input_shape": list(xtr.shape[1:]),
        "class_names": list(data.class_names), "metrics": {"accuracy": accuracy},
        "parameters": int(model.count_params()), "primary": kind == "vit"})
    return {"accuracy": accuracy, "parameters": int(model.count_params()), "history": history}


def suite_options(config: Config, seed: int) -> dict:
    """Keyword options for every evaluator, from the config."""
    return {"corruptions": {"severities": config.severities, "seed": seed},
            "adversarial": {"linf_epsilons": config.linf_epsilons,
                            "l2_epsilons": config.l2_epsilons, "steps": config.pgd_steps,
                            "seed": seed},
            "spatial": {"rotations": config.rotations, "translations": config.translations},
            "patch": {"patch_size": config.patch_size, "seed": seed},
            "cka": {"examples": config.cka_examples}}


def run(config: Config, run_dir: RunDir) -> dict:
    data, xtr, ytr, xte, yte = _load(config)
    run_dir.log(f"{config.dataset}: train {xtr.shape}, eval {xte.shape}")
    training, raw = {}, {}
    for kind in MODELS:
        training[kind] = run_dir.stage(
            f"train_{kind}", lambda kind=kind: _train(config, run_dir, kind, data, xtr, ytr,
                                                      xte, yte))
        model = run_dir.load_model(kind)
        raw[kind] = {}
        for suite in SUITES:
            raw[kind].update(run_dir.stage(
                f"{suite}_{kind}", lambda suite=suite, model=model: registry.run(
                    model, (xte, yte), [suite], suite_options(config, config.seed),
                    log=run_dir.log)))
        keras.backend.clear_session()
    results = collect(raw, training, eval_examples=len(xte))
    write_report(run_dir, config, results, xte, yte)
    return results


def headline(results: dict) -> Headline:
    clean = results["clean"]
    return Headline(
        "clean / mean corruption acc (ViT vs ResNet)",
        f"ViT {clean['vit']:.2f}/{results['mean_corruption_accuracy']['vit']:.2f}, "
        f"ResNet {clean['resnet']:.2f}/{results['mean_corruption_accuracy']['resnet']:.2f}",
        "ImageNet-C mCE: ViT-B/16 (JFT) below ResNet-50x1")


EXPERIMENT = Experiment(
    name="robustness",
    config_cls=Config, run=run, headline=headline, check=check,
    # Quick: sized for ~10-15 min on 2 idle cores (the machine is shared, so expect longer).
    quick={"train_examples": 10_000, "eval_examples": 200, "epochs": 4, "vit_layers": 4,
           "vit_hidden_dim": 64, "vit_heads": 4, "vit_mlp_dim": 128, "resnet_blocks": 2,
           "pgd_steps": 5, "cka_examples": 200},
    demo={"dataset": "digits", "train_examples": 1347, "eval_examples": 128, "epochs": 8,
          "batch_size": 64, "learning_rate": 3e-3, "augment": False, "patch_size": 2,
          "vit_layers": 3, "vit_hidden_dim": 32, "vit_heads": 2, "vit_mlp_dim": 64,
          "resnet_blocks": 1, "resnet_widths": (8, 16), "linf_epsilons": (2 / 255, 8 / 255),
          "l2_epsilons": (0.25,), "pgd_steps": 3, "rotations": (-15.0, 0.0, 15.0),
          "translations": (-1, 0, 1), "cka_examples": 128},
)
