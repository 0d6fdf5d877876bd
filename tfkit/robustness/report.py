"""Tables, plots and report.md for the robustness experiment."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tfkit.robustness import metrics
from tfkit.robustness.corruptions import CORRUPTIONS, corrupt
from tfkit.runs import RunDir, markdown_table

__all__ = ["collect", "write_report", "max_rise"]


def _by_prefix(raw: dict, prefix: str) -> dict[str, Any]:
    return {k[len(prefix):]: v for k, v in raw.items() if k.startswith(prefix)}


def max_rise(accuracies: list[float]) -> float:
    """Largest increase of accuracy from a severity to any higher one (0 if never rises)."""
    return max([0.0] + [accuracies[j] - accuracies[i] for i in range(len(accuracies))
                        for j in range(i + 1, len(accuracies))])


def collect(raw: dict[str, dict], training: dict[str, dict], eval_examples: int) -> dict:
    """Flat evaluator outputs per model -> the nested results.json layout."""
    out: dict[str, Any] = {key: {} for key in (
        "clean", "ece", "corruptions", "mean_corruption_accuracy", "adversarial", "spatial",
        "patch", "layer_removal", "sublayer_removal", "restricted_attention", "cka", "cka_cls",
        "cka_layers", "monotonicity")}
    for m, r in raw.items():
        out["clean"][m] = r["clean/accuracy"]
        out["ece"][m] = r["clean/ece"]
        corr = {}
        for key, acc in _by_prefix(r, "corruptions/").items():
            if key != "mean_accuracy":
                name, severity = key.split("/")
                corr.setdefault(name, {})[int(severity)] = acc
        out["corruptions"][m] = {c: [v[s] for s in sorted(v)] for c, v in corr.items()}
        out["mean_corruption_accuracy"][m] = r["corruptions/mean_accuracy"]
        adv: dict[str, dict[str, float]] = {}
        for key, acc in _by_prefix(r, "adversarial/").items():
            attack, eps = key.split("/")
            adv.setdefault(attack, {})[eps] = acc
        out["adversarial"][m] = adv
        out["spatial"][m] = _by_prefix(r, "spatial/")
        out["patch"][m] = _by_prefix(r, "patch/")
        layers = _by_prefix(r, "layers/")
        parts = {p: [layers[k] for k in sorted((k for k in layers if k.startswith(f"remove_{p}/")),
                                               key=lambda k: int(k.split("/")[1]))]
                 for p in ("block", "attention", "mlp")}
        out["layer_removal"][m] = parts["block"]
        if parts["attention"]:
            out["sublayer_removal"][m] = {"attention": parts["attention"], "mlp": parts["mlp"]}
        restricted = {k: v for k, v in layers.items() if not k.startswith("remove_")}
        if restricted:
            out["restricted_attention"][m] = restricted
        out["cka"][m], out["cka_cls"][m] = r["cka/all"], r["cka/cls"]
        out["cka_layers"][m] = r["cka/layers"]
        out["monotonicity"][m] = {c: max_rise([out["clean"][m], *a])
                                  for c, a in out["corruptions"][m].items()}
    # noise: two standard errors of the difference of two accuracies on eval_examples images
    out["monotonicity_noise"] = 2 * math.sqrt(2 * 0.25 / eval_examples)
    base = out["corruptions"]["resnet"]
    out["mce"] = {m: metrics.mce(out["corruptions"][m], base) for m in raw}
    out["relative_mce"] = {m: metrics.relative_mce(out["corruptions"][m], out["clean"][m], base,
                                                   out["clean"]["resnet"]) for m in raw}
    out["training"] = {m: {k: v for k, v in t.items() if k != "history"}
                       for m, t in training.items()}
    return out


def _plots(run_dir: RunDir, results: dict, images: np.ndarray) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(results["clean"])
    files = {}
    fig, axes = plt.subplots(3, 5, figsize=(16, 9), sharey=True)
    for ax, c in zip(axes.flat, CORRUPTIONS, strict=False):
        for m in models:
            ax.plot(range(6), [results["clean"][m], *results["corruptions"][m][c]], "o-", label=m)
        ax.set_title(c, fontsize=9)
        ax.set_xticks(range(6))
    axes[0, 0].legend()
    fig.supxlabel("severity (0 = clean)")
    fig.supylabel("accuracy")
    files["corruptions"] = run_dir.save_figure(fig, "corruptions.png")

    attacks = sorted(results["adversarial"][models[0]])
    fig, axes = plt.subplots(1, len(attacks), figsize=(4 * len(attacks), 3.2), sharey=True)
    for ax, a in zip(np.atleast_1d(axes), attacks, strict=False):
        for m in models:
            eps = results["adversarial"][m][a]
            xs = [0.0] + [float(e) for e in eps]
            ax.plot(xs, [results["clean"][m], *eps.values()], "o-", label=m)
        ax.set_title(a)
        ax.set_xlabel("epsilon ([0, 1] pixels)")
    np.atleast_1d(axes)[0].set_ylabel("accuracy")
    np.atleast_1d(axes)[0].legend()
    files["adversarial"] = run_dir.save_figure(fig, "adversarial.png")

    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 3.2), sharey=True)
    for ax, m in zip(np.atleast_1d(axes), models, strict=False):
        series = {"whole block": results["layer_removal"][m]}
        if m in results["sublayer_removal"]:
            series["attention only"] = results["sublayer_removal"][m]["attention"]
            series["MLP only"] = results["sublayer_removal"][m]["mlp"]
        width = 0.8 / len(series)
        for k, (label, accs) in enumerate(series.items()):
            ax.bar(np.arange(len(accs)) + k * width, accs, width, label=label)
        ax.axhline(results["clean"][m], color="k", ls="--", lw=1, label="clean")
        ax.set_title(f"{m}: accuracy with block i removed")
        ax.set_xlabel("block i")
        ax.legend(fontsize=7)
    files["layer_removal"] = run_dir.save_figure(fig, "layer_removal.png")

    fig, axes = plt.subplots(2, len(models), figsize=(5 * len(models), 9))
    for j, m in enumerate(models):
        for i, (key, label) in enumerate([("cka", "all tokens"), ("cka_cls", "CLS / pooled")]):
            ax = axes[i, j]
            im = ax.imshow(np.asarray(results[key][m]), vmin=0, vmax=1, cmap="magma",
                           origin="lower")
            ax.set_title(f"{m}: linear CKA, {label}")
            ax.set_xlabel("layer")
            ax.set_ylabel("layer")
            fig.colorbar(im, ax=ax, fraction=0.046)
    files["cka"] = run_dir.save_figure(fig, "cka.png")

    image = images[:1]
    fig, axes = plt.subplots(len(CORRUPTIONS), 6, figsize=(7, 18))
    for i, c in enumerate(CORRUPTIONS):
        row = [image[0]] + [np.asarray(corrupt(image, c, s, seed=0))[0] for s in range(1, 6)]
        for j, im in enumerate(row):
            ax = axes[i, j]
            ax.imshow(np.squeeze(np.clip(im, 0, 1)), cmap="gray" if im.shape[-1] == 1 else None)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(c, fontsize=7)
            if i == 0:
                ax.set_title("clean" if j == 0 else f"severity {j}", fontsize=7)
    files["examples"] = run_dir.save_figure(fig, "corruption_examples.png")
    return files


def _findings(r: dict) -> list[tuple[str, str, str]]:
    """(paper's finding, holds here?, our evidence) — each decided by a stated rule."""
    vit, res = "vit", "resnet"
    out = []
    out.append(("ViT is more robust to common corruptions than ResNet (lower mCE; needs "
                "large-scale pre-training)", "holds" if r["mce"][vit] < 1.0 else "does not hold",
                f"ViT mCE {r['mce'][vit]:.3f} vs ResNet 1.000 (relative mCE "
                f"{r['relative_mce'][vit]:.3f}); trained from scratch on a CIFAR subset"))
    worst = {m: min(min(v.values()) for a, v in r["adversarial"][m].items()
                    if a.startswith("pgd")) for m in (vit, res)}
    out.append(("ViT and ResNet are both highly vulnerable to PGD", "holds" if max(
        worst.values()) < 0.2 else "does not hold",
        f"lowest PGD accuracy: ViT {worst[vit]:.3f}, ResNet {worst[res]:.3f} (rule: both < 0.2)"))
    sp = {m: r["spatial"][m]["rotation_translation"] for m in (vit, res)}
    out.append(("Worst-of-grid rotations/translations hurt ViT at least as much as ResNet",
                "holds" if sp[vit] <= sp[res] else "does not hold",
                f"worst-of-grid accuracy: ViT {sp[vit]:.3f}, ResNet {sp[res]:.3f}"))
    drops = [r["clean"][vit] - a for a in r["layer_removal"][vit]]
    later = max(drops[1:]) if len(drops) > 1 else float("nan")
    out.append(("Any single ViT block except the first can be removed with a small loss",
                "holds" if drops[0] >= later else "does not hold",
                f"accuracy drop removing block 0: {drops[0]:.3f}; worst later block: "
                f"{later:.3f} (rule: block 0 hurts most)"))
    sub = r["sublayer_removal"].get(vit)
    if sub:
        att = np.mean([r["clean"][vit] - a for a in sub["attention"]])
        mlp = np.mean([r["clean"][vit] - a for a in sub["mlp"]])
        out.append(("Removing MLP sub-layers hurts less than removing attention",
                    "holds" if mlp < att else "does not hold",
                    f"mean drop removing attention {att:.3f}, removing MLP {mlp:.3f}"))
    ra = r["restricted_attention"].get(vit, {})
    if ra:
        c = r["clean"][vit]
        out.append(("Local attention keeps most accuracy; late layers can attend to self + CLS",
                    "holds" if min(ra["local_attention/all"], ra["self_cls/late"]) >= c - 0.05
                    else "does not hold",
                    f"clean {c:.3f}; local everywhere {ra['local_attention/all']:.3f}; "
                    f"self+CLS in late half {ra['self_cls/late']:.3f} (rule: within 5 points)"))
    return out


def write_report(run_dir: RunDir, config: Any, results: dict, images: np.ndarray,
                 labels: np.ndarray) -> None:
    """Plots + report.md: our numbers, tables and the paper's findings checked at this scale."""
    files = _plots(run_dir, results, images)
    models = list(results["clean"])
    lines = [f"# ViT vs ResNet robustness on {config.dataset}\n",
             f"Evaluated on {len(images)} test images; models trained on {config.train_examples} "
             f"images for {config.epochs} epochs. Paper: Bhojanapalli et al., ICCV 2021 "
             "(ImageNet / JFT-300M pre-training, 224 px).\n", "## Summary\n",
             markdown_table([[m, results["training"][m]["parameters"], results["clean"][m],
                              results["ece"][m], results["mean_corruption_accuracy"][m],
                              results["mce"][m], results["relative_mce"][m]] for m in models],
                            ["model", "params", "clean acc", "ECE", "mean corruption acc",
                             "mCE (vs ResNet)", "relative mCE"]),
             "\nPaper (ImageNet-C, ImageNet-21k/JFT pre-training): ViT-B/16 mCE below "
             "ResNet-50x1's; from-scratch ImageNet ViTs are less robust than ResNets.\n",
             "## Findings of the paper at this scale\n",
             markdown_table(_findings(results), ["paper's finding", "here", "evidence"]),
             "\n## Corruptions\n", f"![accuracy vs severity]({files['corruptions']})\n",
             f"![examples]({files['examples']})\n"]
    rows = [[c, *[", ".join(f"{a:.2f}" for a in results["corruptions"][m][c]) for m in models]]
            for c in CORRUPTIONS]
    lines.append(markdown_table(rows, ["corruption", *[f"{m} (sev 1..5)" for m in models]]))
    noise = results["monotonicity_noise"]
    rise = {m: max(results["monotonicity"][m].values()) for m in models}
    lines.append(f"\nMonotonicity check: the largest rise of accuracy with severity (clean "
                 f"included) is {', '.join(f'{m} {v:.3f}' for m, v in rise.items())}; noise "
                 f"level (2 s.e. of a difference) {noise:.3f}: "
                 + ("within noise.\n" if max(rise.values()) <= noise else "ABOVE noise.\n"))
    lines += ["\n## Adversarial\n", f"![adversarial]({files['adversarial']})\n"]
    adv_rows = [[m, a, e, v] for m in models for a, eps in results["adversarial"][m].items()
                for e, v in eps.items()]
    lines.append(markdown_table(adv_rows, ["model", "attack", "epsilon", "accuracy"]))
    lines += ["\n## Spatial and patch perturbations\n",
              markdown_table([[m, *results["spatial"][m].values(), *results["patch"][m].values()]
                              for m in models],
                             [*["model"], *[f"spatial {k}" for k in results["spatial"][models[0]]],
                              *list(results["patch"][models[0]])]),
              "\n## Model perturbations\n", f"![layer removal]({files['layer_removal']})\n",
              f"![CKA]({files['cka']})\n"]
    for m, ra in results["restricted_attention"].items():
        lines.append(markdown_table([[k, v] for k, v in ra.items()],
                                    [f"{m} restricted attention", "accuracy"]))
    run_dir.write_text("report.md", "\n".join(lines))
