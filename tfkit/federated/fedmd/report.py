"""FedMD's report.md: accuracy per party per round (with round-0 and upper-bound lines), bytes
moved per round against FedAvg on the same models, and wall time per stage."""

from __future__ import annotations

from typing import Any

import numpy as np

from tfkit.runs import RunDir, markdown_table

__all__ = ["write_report", "plot_accuracy"]

PAPER = {"round0": 0.747, "final": 0.878, "upper_bound": 0.930}  # the paper's FEMNIST numbers


def plot_accuracy(results: dict, run_dir: RunDir) -> str:
    """Per-party test accuracy over rounds; dashed = round 0, dotted = pooled upper bound."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    rounds = [0] + [r["round"] for r in results["rounds"]]
    colors = plt.cm.tab10(np.linspace(0, 1, 10))
    for i, r0 in enumerate(results["round0"]):
        c = colors[i % 10]
        ax.plot(rounds, [r0] + [r["accuracy"][i] for r in results["rounds"]], "-o", color=c,
                ms=3, label=f"party {i}")
        ax.axhline(r0, color=c, ls="--", lw=0.6)
        ax.axhline(results["upper_bound"][i], color=c, ls=":", lw=0.8)
    ax.set_xlabel("round (0 = after transfer learning)")
    ax.set_ylabel("test accuracy")
    ax.set_title("FedMD: per-party accuracy (-- round 0, ··· pooled upper bound)")
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    return run_dir.save_figure(fig, "accuracy.png")


def write_report(results: dict, config: Any, run_dir: RunDir) -> None:
    plot = plot_accuracy(results, run_dir)
    summary = markdown_table([
        ["mean accuracy after transfer learning (round 0)", results["mean_round0"],
         PAPER["round0"]],
        [f"mean accuracy after round {results['rounds'][-1]['round']}", results["mean_final"],
         PAPER["final"]],
        ["mean pooled-data upper bound", results["mean_upper_bound"], PAPER["upper_bound"]],
        ["mean gain", results["mean_gain"], PAPER["final"] - PAPER["round0"]],
        ["gap to upper bound", results["gap_to_upper_bound"],
         PAPER["upper_bound"] - PAPER["final"]],
        ["parties above their round 0", f"{results['parties_improved']}/{len(results['final'])}",
         "10/10"],
    ], ["", "ours", "paper (FEMNIST, full size)"])
    per_party = markdown_table(
        [[i, m, p, r0, f, ub] for i, (m, p, r0, f, ub) in enumerate(zip(
            results["models"], results["parameters"], results["round0"], results["final"],
            results["upper_bound"], strict=True))],
        ["party", "model", "parameters", "round 0", "final", "upper bound"])
    comm = markdown_table(
        [[r["round"], r["bytes_up"], r["bytes_down"], r["fedavg_bytes_up"],
          r["fedavg_bytes_down"], r["fedavg_bytes_up"] / max(r["bytes_up"], 1),
          sum(r["participated"])] for r in results["rounds"]],
        ["round", "FedMD bytes up", "FedMD bytes down", "FedAvg bytes up (same models)",
         "FedAvg bytes down", "FedAvg / FedMD", "parties"], digits=1)
    stage_names = list(results["rounds"][0]["stage_seconds"])
    times = markdown_table(
        [[r["round"], *[r["stage_seconds"][s] for s in stage_names], r["seconds"],
          r["stage_seconds"]["aggregate"] / max(r["seconds"], 1e-9)]
         for r in results["rounds"]],
        ["round", *stage_names, "round total", "TFF share"], digits=2)
    where = f"TFF workers {results['workers']}" if results.get("workers") else \
        "a local TFF worker"
    text = f"""# FedMD report

Scenario `{config.scenario}` ({config.setting}), {config.num_parties} parties, width
{config.width}, {config.rounds} rounds, alignment {results['rounds'][0]['bytes_up'] and
config.alignment_size} samples per round; aggregation ran on {where}.

{summary}
![accuracy per party per round]({plot})

## Per party

{per_party}
## Communication per round

FedMD moves logits (alignment samples x classes x 4 bytes) per party each way; FedAvg would move
every party's full model each way (and could not even average these heterogeneous models).

{comm}
## Wall time per stage (seconds)

{times}"""
    run_dir.write_text("report.md", text)
