"""Lazy Neuron (Li et al., ICLR 2023): activation sparsity, Top-k MLPs, sparse TFLite.

Stages: (1) emergence: ReLU ViTs (image data) and ReLU decoder LMs (text) at several MLP widths
and depths, nonzero fraction per layer on train and test data and over training, plus one ViT
trained on random labels; (2) Top-k ViTs (k = d_ff/32, d_ff/16, d_ff/8) against the dense
one: accuracy, ECE, label noise, corruptions; (3) on-device: dense / Top-k / pruned / both as
TFLite, batch 1, 1 thread, XNNPACK on and off.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from tfkit import datasets
from tfkit.backend import keras, set_seed
from tfkit.config import ConfigError, require_at_least
from tfkit.datasets import next_token_windows
from tfkit.datasets.pipeline import image_dataset, to_float
from tfkit.experiments.base import Experiment, Headline
from tfkit.models import DecoderLM, ViT
from tfkit.runs import RunDir
from tfkit.sparsity import evaluate_classifier
from tfkit.sparsity.comparison import combine_seeds, topk_row
from tfkit.sparsity.evaluation import accuracy, logits_fn, symmetric_label_noise
from tfkit.sparsity.on_device import on_device_study
from tfkit.sparsity.probed import compile_classifier, fit_probed, sparsity_records
from tfkit.sparsity.report import write_report


@dataclass(frozen=True)
class Config:
    """Lazy Neuron on CIFAR-10 and tinyshakespeare.

    Full run: `TFKIT_DATA_DIR=../shared/data uv run tfkit run lazy-neuron --out runs/lazy`.
    Quick: add `--quick` (996 s CPU on one thread; ~14 min on 2 idle cores; one seed). Expected:
    trained ReLU MLPs well below 50 % nonzero (the paper: ≤ 10 % at scale, decreasing with
    width; the quick ViTs, 375 steps, reach 37-47 %, the quick LMs, 125 steps at 1e-2, 23-45 %;
    the full LM grid's shape reached ≤ 10 % in every layer in benchmarks/lazy_neuron_emergence.py
    at depth 2, d_ff 2048); Top-k 0.5-1 point below dense accuracy;
    single runs differ by ±2 points, so the Top-k comparison is repeated for `seeds` seeds and
    reported as mean ± std (`--set seeds=3` on the quick preset: seed-paired, Top-k - dense
    is -0.5 ± 0.5 / -0.9 ± 0.7 points clean, -0.5 ± 2.4 / -1.3 ± 1.9 at 40 % label noise, ECE
    +0.01: no label-noise or calibration benefit at this scale); on TFLite (static batch 1) the
    neuron-pruned model 2-3x faster than dense at equal accuracy, while Top-k and block-sparse
    weights are no faster than XNNPACK's dense kernels.
    """

    seed: int = 0
    data_dir: str | None = None
    # ViT on images
    image_dataset: str = "cifar10"
    train_examples: int = 20_000  # the shared CIFAR-10 copy has 20,000 train images
    test_examples: int = 10_000
    patch_size: int = 4  # 32x32 -> 64 patches + [CLS]
    hidden_dim: int = 128
    num_heads: int = 4
    vit_widths: tuple[int, ...] = (256, 512, 1024)  # MLP widths d_ff of the emergence grid
    vit_depths: tuple[int, ...] = (2, 4)
    epochs: int = 20
    batch_size: int = 128  # ViT images per step
    learning_rate: float = 1e-3  # Adam (ViTs); small ViTs train stably at 1e-3 without warmup
    # decoder LM on text: the shape measured to reach ≤ 10 % nonzero in every MLP layer
    # (benchmarks/lazy_neuron_emergence.py: hidden 64, depth 2, d_ff 2048, 2,000 steps at
    # 1e-2: 9.0 / 8.1 %); d_ff 512 (8x hidden) plateaus near 7.9 / 11.4 %; depth 4 and d_ff
    # 1024 were not measured
    text_dataset: str = "tinyshakespeare"
    lm_hidden_dim: int = 64
    lm_widths: tuple[int, ...] = (512, 1024, 2048)
    lm_depths: tuple[int, ...] = (2, 4)
    lm_sequence_length: int = 64  # characters per window
    lm_train_windows: int = 25_600  # random training windows per epoch: 400 steps at batch 64
    lm_epochs: int = 5  # 2,000 steps: sparsity still falls ~1 point per 250 steps at 1,500
    lm_batch_size: int = 64  # windows per step
    # Adam for the LMs, 10x the ViTs': the step size is the sparsity lever (same benchmark,
    # d_ff 512, 2,000 steps: 36.6 / 36.9 % nonzero at 1e-3, 25.4 / 19.8 % at 3e-3, 9.1 / 13.1 %
    # at 1e-2, with an equal or better test loss; no warmup needed at this size)
    lm_learning_rate: float = 1e-2
    # Top-k comparison (a ViT of width topk_width, depth topk_depth)
    topk_width: int = 512
    topk_depth: int = 4
    topk_divisors: tuple[int, ...] = (32, 16, 8)  # k = d_ff / divisor
    label_noise: tuple[float, ...] = (0.2, 0.4)  # symmetric noise rates
    # training seeds of the Top-k comparison (seed, seed + 1, ...): single runs differ by about
    # ±2 points, so every Top-k and dense ViT (clean and noisy) is trained once per seed and
    # the results give mean ± std; the emergence grid and TFLite use `seed` only
    seeds: int = 3
    # label-noise runs train on the first noise_train_examples images for noise_epochs epochs
    # (None: as the clean runs) and are scored at the end of training: the effect under test
    # is memorization of the wrong labels, which needs many passes over few images
    noise_train_examples: int | None = None
    noise_epochs: int | None = None
    severities: tuple[int, ...] = (1, 3, 5)  # CIFAR-10-C severities of noise and blur
    random_labels: bool = True  # also train the reference ViT on random labels
    # sparsity probes
    probe_examples: int = 512  # examples per split for the per-layer nonzero fraction
    probe_every_steps: int = 100  # over-training probe interval (optimizer steps)
    # on-device (TFLite)
    tflite_divisor: int = 16  # the Top-k model exported: k = d_ff / tflite_divisor
    prune_sparsity: float = 0.9  # fraction of MLP weights zeroed (block) / neurons removed
    prune_epochs: int = 2  # fine-tuning epochs while pruning
    latency_runs: int = 200  # timed invokes per variant and XNNPACK mode
    tflite_int8: bool = True  # also convert and time dynamic-range int8 variants
    tflite_eval_examples: int = 1000  # test images scored by the TFLite interpreter

    def __post_init__(self) -> None:
        require_at_least(self, ("seeds", "probe_every_steps", "topk_divisors", "tflite_divisor",
                                "latency_runs"))
        if not 0.0 <= self.prune_sparsity < 1.0:
            raise ConfigError(f"prune_sparsity must be in [0, 1), got {self.prune_sparsity}")
        if any(not 0.0 <= rate < 1.0 for rate in self.label_noise):
            raise ConfigError(f"label_noise rates must be in [0, 1), got {self.label_noise}")


# --- data ------------------------------------------------------------------------------------

def _images(cfg: Config) -> tuple:
    ds = datasets.load(cfg.image_dataset, cfg.data_dir)
    rng = np.random.default_rng(cfg.seed)
    usable = min(cfg.train_examples, len(ds.train)) // cfg.batch_size * cfg.batch_size
    tr = rng.permutation(len(ds.train))[:usable]  # whole batches only: one traced train step
    te = rng.permutation(len(ds.test))[:cfg.test_examples]
    return (to_float(ds.train.x[tr]), ds.train.y[tr], to_float(ds.test.x[te]), ds.test.y[te],
            ds.num_classes, ds.class_names)


def _text(cfg: Config) -> tuple:
    ds = datasets.load(cfg.text_dataset, cfg.data_dir)
    return ds.encode(ds.train), ds.encode(ds.test), ds.vocab_size


# --- training stages -------------------------------------------------------------------------

def _vit(cfg: Config, data: tuple, width: int, depth: int, top_k: int | None) -> ViT:
    x = data[0]
    return ViT(image_size=x.shape[1], patch_size=cfg.patch_size, num_layers=depth,
               hidden_dim=cfg.hidden_dim, num_heads=cfg.num_heads, intermediate_dim=width,
               num_classes=data[4], channels=x.shape[-1], activation="relu", top_k=top_k)


def _train_vit(cfg: Config, run_dir: RunDir, data: tuple, name: str, width: int, depth: int,
               top_k: int | None = None, noise: float = 0.0, random_labels: bool = False,
               evaluate: bool = False, keep: bool = False) -> dict:
    """Trains one ReLU ViT; returns per-layer sparsity (train/test, over steps) and accuracy.

    With `noise`, trains on the first `noise_train_examples` images for `noise_epochs` epochs
    (no probes over training) and also returns the ECE and the fraction of the flipped
    training labels the model fits at the end (`memorized`)."""
    keras.backend.clear_session()
    set_seed(cfg.seed)
    x_tr, y_tr, x_te, y_te, classes, _ = data
    epochs, every = cfg.epochs, cfg.probe_every_steps
    if noise:
        n = (cfg.noise_train_examples or len(x_tr)) // cfg.batch_size * cfg.batch_size
        x_tr, y_true = x_tr[:n], y_tr[:n]
        y_tr = symmetric_label_noise(y_true, noise, classes, seed=cfg.seed + 1)
        epochs, every = cfg.noise_epochs or cfg.epochs, 10**9  # probes at start and end only
    elif random_labels:
        y_tr = np.random.default_rng(cfg.seed + 1).integers(0, classes, len(y_tr))
    model = compile_classifier(_vit(cfg, data, width, depth, top_k), cfg.learning_rate)
    probes = {"train": x_tr[:cfg.probe_examples], "test": x_te[:cfg.probe_examples]}
    out = {"width": width, "depth": depth, "top_k": top_k, "noise": noise,
           "random_labels": random_labels, "train_examples": len(x_tr), "epochs": epochs,
           **fit_probed(model, image_dataset(x_tr, y_tr, cfg.batch_size, shuffle=True,
                                             seed=cfg.seed), probes,
                        run_dir.checkpoint_dir(name), epochs, every, log=run_dir.log, verbose=0),
           "train_accuracy": accuracy(model, x_tr, y_tr), "accuracy": accuracy(model, x_te, y_te)}
    if noise:
        flipped = y_tr != y_true
        out["memorized"] = accuracy(model, x_tr[flipped], y_tr[flipped])
        out["ece"] = dict(evaluate_classifier(logits_fn(model), x_te, y_te, ()))["ece"]
    if evaluate:
        out["metrics"] = dict(evaluate_classifier(logits_fn(model), x_te, y_te,
                                                  cfg.severities, seed=cfg.seed))
    if keep:
        model.save(run_dir.checkpoint_dir(name) / "model.keras")
    run_dir.log(f"{name}: test accuracy {out['accuracy']:.3f}, nonzero (test) "
                + " ".join(f"{f:.3f}" for f in out["test"]))
    return out


def _train_lm(cfg: Config, run_dir: RunDir, text: tuple, name: str, width: int,
              depth: int) -> dict:
    keras.backend.clear_session()
    set_seed(cfg.seed)
    train_ids, test_ids, vocab = text
    length = cfg.lm_sequence_length
    windows = max(1, cfg.lm_train_windows // cfg.lm_batch_size) * cfg.lm_batch_size
    x, y = next_token_windows(train_ids, windows, length, cfg.seed)
    xt, yt = next_token_windows(test_ids, max(cfg.probe_examples, 64), length, cfg.seed + 1)
    model = compile_classifier(DecoderLM(vocab, length, num_layers=depth,
                                         hidden_dim=cfg.lm_hidden_dim, num_heads=cfg.num_heads,
                                         intermediate_dim=width, activation="relu"),
                               cfg.lm_learning_rate)
    probes = {"train": x[:cfg.probe_examples], "test": xt[:cfg.probe_examples]}
    out = {"width": width, "depth": depth,
           **fit_probed(model, x, probes, run_dir.checkpoint_dir(name), cfg.lm_epochs,
                        cfg.probe_every_steps, log=run_dir.log, y=y, batch_size=cfg.lm_batch_size,
                        verbose=0)}
    out["test_loss"] = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
        yt, model(xt, training=False)))
    run_dir.log(f"{name}: test loss {out['test_loss']:.3f}, nonzero (test) "
                + " ".join(f"{f:.3f}" for f in out["test"]))
    return out


def _on_device(cfg: Config, run_dir: RunDir, data: tuple) -> dict:
    """Dense, Top-k, block-pruned, both, and neuron-pruned as TFLite (static batch 1); saves
    the Top-k (primary) and dense models."""
    import tfkit.layers  # noqa: F401  (registers the layers for load_model)

    x_tr, y_tr, x_te, y_te, _, class_names = data
    k = max(1, cfg.topk_width // cfg.tflite_divisor)
    load = lambda n: keras.models.load_model(run_dir.checkpoint_dir(n) / "model.keras")
    dense, topk = load(f"vit_w{cfg.topk_width}_d{cfg.topk_depth}"), load(f"vit_topk{k}")
    train = image_dataset(x_tr, y_tr, cfg.batch_size, shuffle=True, seed=cfg.seed)
    set_seed(cfg.seed)
    n = cfg.tflite_eval_examples
    out = on_device_study(dense, topk, train, x_te[:n], y_te[:n], cfg.prune_epochs,
                          cfg.prune_sparsity, cfg.latency_runs, cfg.tflite_int8)
    out["top_k"] = k
    meta = {"kind": "image_classifier", "dataset": cfg.image_dataset,
            "input_shape": list(x_te.shape[1:]), "class_names": list(class_names)}
    for name, model, primary in (("topk", topk, True), ("dense", dense, False)):
        acc = accuracy(model, x_te, y_te)
        run_dir.save_model(model, name, {**meta, "metrics": {"accuracy": acc}, "top_k":
                                         k if name == "topk" else None, "primary": primary})
    return out


# --- the experiment --------------------------------------------------------------------------

def _topk_comparison(cfg: Config, run_dir: RunDir, data: tuple, dense: dict | None,
                     suffix: str) -> dict:
    """Dense and Top-k ViTs of one seed (`cfg.seed`): {k or None: summary}. Stage names get
    `suffix` (none for the first seed, whose dense model the emergence grid may have trained)."""
    topk_cfg = (cfg.topk_width, cfg.topk_depth)
    if dense is None:
        name = f"vit_w{cfg.topk_width}_d{cfg.topk_depth}{suffix}"
        dense = run_dir.stage(name, lambda: _train_vit(cfg, run_dir, data, name, *topk_cfg,
                                                       evaluate=True))
    rows = {None: dense}
    for divisor in cfg.topk_divisors:
        k = max(1, cfg.topk_width // divisor)
        name = f"vit_topk{k}{suffix}"
        rows[k] = run_dir.stage(name, lambda k=k, n=name: _train_vit(
            cfg, run_dir, data, n, *topk_cfg, top_k=k, evaluate=True,
            keep=not suffix and cfg.topk_width // cfg.tflite_divisor == k))
    noisy: dict = {k: {} for k in rows}  # {k: {rate: end-of-training accuracy, ECE, memorized}}
    for rate in cfg.label_noise:
        for k in rows:
            name = f"vit_{'dense' if k is None else f'topk{k}'}_noise{rate:g}{suffix}"
            r = run_dir.stage(name, lambda k=k, n=name, rate=rate: _train_vit(
                cfg, run_dir, data, n, *topk_cfg, top_k=k, noise=rate))
            noisy[k][f"{rate:g}"] = {key: r[key] for key in ("accuracy", "ece", "memorized")}

    return {k: topk_row(k, cfg.seed, rows[k]["metrics"], noisy[k], rows[k]["test"])
            for k in rows}


def run(cfg: Config, run_dir: RunDir) -> dict:
    data = _images(cfg)
    text = _text(cfg)
    sparsity, over_training, runs = [], [], {}

    def record(model_name: str, r: dict) -> None:
        rows, probes = sparsity_records(model_name, r)
        sparsity.extend(rows)
        over_training.append(probes)

    topk_cfg = (cfg.topk_width, cfg.topk_depth)
    for depth in cfg.vit_depths:
        for width in cfg.vit_widths:
            is_dense_ref = (width, depth) == topk_cfg
            r = run_dir.stage(f"vit_w{width}_d{depth}", lambda w=width, d=depth, ref=is_dense_ref:
                              _train_vit(cfg, run_dir, data, f"vit_w{w}_d{d}", w, d,
                                         evaluate=ref, keep=ref))
            runs[f"vit_w{width}_d{depth}"] = r
            record("vit", r)
    for depth in cfg.lm_depths:
        for width in cfg.lm_widths:
            r = run_dir.stage(f"lm_w{width}_d{depth}", lambda w=width, d=depth:
                              _train_lm(cfg, run_dir, text, f"lm_w{w}_d{d}", w, d))
            record("lm", r)
    if cfg.random_labels:
        r = run_dir.stage("vit_random_labels", lambda: _train_vit(
            cfg, run_dir, data, "vit_random_labels", *topk_cfg, random_labels=True))
        record("vit-random-labels", r)

    # Top-k against dense: clean (with ECE and corruptions) and under label noise, per seed
    dense_name = f"vit_w{cfg.topk_width}_d{cfg.topk_depth}"
    if dense_name not in runs:
        runs[dense_name] = run_dir.stage(dense_name, lambda: _train_vit(
            cfg, run_dir, data, dense_name, *topk_cfg, evaluate=True, keep=True))
    per_seed = [_topk_comparison(replace(cfg, seed=cfg.seed + i), run_dir, data,
                                 runs[dense_name] if i == 0 else None, suffix=f"_s{cfg.seed + i}"
                                 if i else "") for i in range(cfg.seeds)]
    dense, topk = combine_seeds(per_seed)
    tflite = run_dir.stage("tflite", lambda: _on_device(cfg, run_dir, data))
    results = {"sparsity": sparsity, "sparsity_over_training": over_training, "topk": topk,
               "dense": dense, "tflite": tflite}
    write_report(cfg, run_dir, results)
    return results


def headline(results: dict) -> Headline:
    vit = [r["nonzero_fraction_per_layer"] for r in results["sparsity"]
           if r["model"] == "vit" and r["split"] == "test"]
    later = [f for layers in vit for f in (layers[1:] or layers)]
    return Headline("ViT MLP nonzero fraction (test, layers ≥ 2)", f"{np.mean(later):.1%}",
                    "6.3% (ViT-B/16)")


EXPERIMENT = Experiment(
    name="lazy-neuron",
    config_cls=Config,
    run=run,
    headline=headline,
    # batch 32: 4x the updates of batch 128 for about the same CPU per epoch; label noise on
    # 1,024 images for 25 epochs, where the dense ViT fits ~40 % of the flipped labels
    quick={"train_examples": 4000, "test_examples": 1000, "patch_size": 8, "hidden_dim": 64,
           "vit_widths": (128, 256, 512), "vit_depths": (1, 2), "epochs": 3, "batch_size": 32,
           "lm_hidden_dim": 64, "lm_widths": (128, 256, 512), "lm_depths": (1, 2),
           "lm_sequence_length": 64, "lm_train_windows": 4000, "lm_epochs": 2,
           "lm_batch_size": 64, "topk_width": 512, "topk_depth": 2,
           "noise_train_examples": 1024, "noise_epochs": 25, "probe_examples": 256,
           "probe_every_steps": 75, "prune_epochs": 1, "latency_runs": 100,
           "tflite_eval_examples": 1000, "seeds": 1},  # one seed: `--set seeds=3` for spread
    demo={"image_dataset": "digits", "train_examples": 2000, "test_examples": 500,
          "patch_size": 2, "hidden_dim": 32, "num_heads": 2, "vit_widths": (32, 128),
          "vit_depths": (1,), "epochs": 3, "batch_size": 64, "lm_batch_size": 32,
          "text_dataset": "embedded-text", "lm_hidden_dim": 32, "lm_widths": (32, 128),
          "lm_depths": (1,), "lm_sequence_length": 32, "lm_train_windows": 256, "lm_epochs": 1,
          "topk_width": 128, "topk_depth": 1, "topk_divisors": (16,), "label_noise": (0.4,),
          "random_labels": False, "severities": (1, 5), "probe_examples": 128,
          "probe_every_steps": 10, "prune_epochs": 1, "latency_runs": 20,
          "tflite_eval_examples": 100, "tflite_int8": False, "seeds": 1},
)
