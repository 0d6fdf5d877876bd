"""results.json layout and report.md (tables beside the paper's numbers, one plot)."""

from __future__ import annotations

from typing import Any

from tfkit.runs import RunDir, markdown_table

__all__ = ["collect", "write", "PAPER"]

# ProMoT paper (mT5-XXL): 1-shot normalized average of 8 other tasks after fine-tuning on RTE,
# the RTE accuracy, and the En-Fr run's normalized average.
PAPER = {"entail": {"pretrained": 17.52, "standard_ft": 15.43, "promot": 20.10,
                    "target_standard_ft": 92.78, "target_promot": 92.06},
         "translate": {"standard_ft": 9.15, "promot": 18.87}}


def collect(per_method: dict[str, dict]) -> dict:
    """{method: evaluation} → {"target", "icl": {"1shot", "4shot"}, "format_specialization"}."""
    return {
        "target": {m: r["target"] for m, r in per_method.items()},
        "icl": {k: {m: r["icl"][k] for m, r in per_method.items()} for k in ("1shot", "4shot")},
        "format_specialization": {m: r["format_specialization"]["1shot"]
                                  for m, r in per_method.items()},
        "format_specialization_4shot": {m: r["format_specialization"]["4shot"]
                                        for m, r in per_method.items()},
    }


def _table(run: dict, target: str) -> str:
    paper = PAPER.get(target, {})
    rows = []
    for m in run["target"]:
        rows.append([m, run["target"][m], run["icl"]["1shot"][m]["normalized_average"],
                     run["icl"]["4shot"][m]["normalized_average"],
                     run["format_specialization"][m], paper.get(m)])
    return markdown_table(rows, ["method", f"{target} score", "1-shot norm. avg",
                                 "4-shot norm. avg", "format spec. % (1-shot)",
                                 "paper 1-shot norm. avg"], digits=2)


def _per_task(run: dict, shots: str) -> str:
    methods = list(run["icl"][shots])
    tasks = [t for t in run["icl"][shots][methods[0]] if t != "normalized_average"]
    rows = [[t, *(run["icl"][shots][m][t] for m in methods)] for t in tasks]
    return markdown_table(rows, ["task", *methods], digits=1)


def _plot(run_dir: RunDir, runs: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 3.2), squeeze=False)
    for ax, (target, run) in zip(axes[0], runs.items(), strict=True):
        methods = list(run["target"])
        for j, shots in enumerate(("1shot", "4shot")):
            values = [run["icl"][shots][m]["normalized_average"] for m in methods]
            ax.bar([i + 0.4 * j for i in range(len(methods))], values, width=0.4, label=shots)
        ax.set_xticks([i + 0.2 for i in range(len(methods))], methods, rotation=30, ha="right")
        ax.set_title(f"fine-tuned on {target}: other tasks")
        ax.set_ylabel("normalized average")
        ax.legend()
    return run_dir.save_figure(fig, "icl_normalized_average.png")


def write(run_dir: RunDir, config: Any, results: dict) -> None:
    """Writes report.md with one section per fine-tuning target."""
    lines = ["# ProMoT: two-stage fine-tuning keeps in-context learning\n",
             f"Pretrained LM: {results['pretrain'].get('parameters')} parameters "
             f"({'preset ' + config.preset_dir if config.preset_dir else 'tfkit DecoderLM'}). "
             "Target scores: accuracy (entail) or BLEU-2 (translate), 0-shot with the method's "
             "prompt (pretrained: 1-shot in context). Other tasks: the 8 pretraining tasks, "
             "1-/4-shot, prompt removed; normalized so chance = 0.\n",
             f"![normalized averages]({_plot(run_dir, results['runs'])})\n"]
    for target, run in results["runs"].items():
        lines += [f"## Fine-tuned on `{target}`\n", _table(run, target),
                  "\nPer-task 1-shot scores (%):\n", _per_task(run, "1shot")]
    lines.append("\nPaper (mT5-XXL, RTE): RTE accuracy 92.78 (standard FT) vs 92.06 (ProMoT); "
                 "1-shot normalized average 17.52 / 15.43 / 20.10 (pretrained / FT / ProMoT); "
                 "En-Fr: 9.15 (FT) vs 18.87 (ProMoT).\n")
    run_dir.write_text("report.md", "\n".join(lines))
