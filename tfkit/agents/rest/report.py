"""report.md and the accuracy plot of a `rest-react` run."""

from __future__ import annotations

from tfkit.runs import RunDir, markdown_table

__all__ = ["write_report"]


def _plot(run: RunDir, rows: list[dict]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    for size, color in (("L", "C0"), ("S", "C1"), ("XS", "C2")):
        pts = [(i, r["test_accuracy_mean"], r["test_accuracy_std"])
               for i, r in enumerate(rows) if r["model"] == size]
        if pts:
            ax.errorbar([p[0] for p in pts], [p[1] for p in pts], [p[2] for p in pts],
                        fmt="o-", color=color, label=size, capsize=3)
    ax.set_xticks(range(len(rows)), [f"{r['name']}\n{r['model']}" for r in rows], fontsize=7)
    ax.set_ylabel("test auto-eval accuracy (%)")
    ax.legend()
    return run.save_figure(fig, "accuracy.png")


def write_report(run: RunDir, results: dict) -> None:
    rows = results["iterations"]
    table = markdown_table(
        [[r["name"], r["model"], r["params"], r["dev_accuracy_mean"], r["dev_accuracy_std"],
          r["test_accuracy_mean"], r["test_accuracy_std"], r["paper_bamboogle"]] for r in rows],
        ["iteration", "model", "params", "dev acc", "dev std", "test acc", "test std",
         "paper (Bamboogle)"], digits=1)
    process = markdown_table(
        [[r["name"], r["model"], *r["process"].values()] for r in rows],
        ["iteration", "model", "parse failures", "searches/q", "budget exhausted",
         "citation validity"], digits=3)
    abl = results.get("ablations") or []
    abl_md = markdown_table(
        [[a["ablation"], a["arm"], a["trajectories"], a["examples"], a["dev_accuracy_mean"],
          a["dev_accuracy_std"], a["test_accuracy_mean"], a["test_accuracy_std"]] for a in abl],
        ["ablation (gen1 L variants)", "arm", "trajectories", "ranked examples", "dev acc",
         "dev std", "test acc", "test std"], digits=1)
    figure = _plot(run, rows)
    run.write_text("report.md", f"""# ReST meets ReAct on a generated multi-hop world

Accuracy is the offline auto-eval (alias match) in %, mean ± std over sampled runs (T=0.5).
The paper's column is its Bamboogle auto-eval (PaLM 2 models), shown for the shape only: our
world, models and the scripted "prompted" policy are stand-ins (docs/rest_react.md).

{table}
![accuracy]({figure})

## Process metrics (test)

{process}
## Ablations

{abl_md if abl else "not run (ablations=false)"}

Paper: 2 trajectories/question +2.2, 4 no further gain; ranker-selected data +9.0 over the
same amount of unfiltered data; self-checks +0.5-1.0.

Teacher demonstrations: {results['demonstrations']}
""")
