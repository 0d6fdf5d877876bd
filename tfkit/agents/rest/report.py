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
          r.get("dev_accuracy_se"), r["test_accuracy_mean"], r["test_accuracy_std"],
          r.get("test_accuracy_se"), r["paper_bamboogle"]] for r in rows],
        ["iteration", "model", "params", "dev acc", "dev std", "dev SE", "test acc", "test std",
         "test SE", "paper (Bamboogle)"], digits=1)
    paired = markdown_table(
        [[p["before"], p["after"], p["dev_difference"], p["dev_difference_se"],
          p["test_difference"], p["test_difference_se"]]
         for p in results.get("paired_differences", [])],
        ["before", "after", "dev difference", "paired SE", "test difference", "paired SE"],
        digits=1)
    process = markdown_table(
        [[r["name"], r["model"], *r["process"].values()] for r in rows],
        ["iteration", "model", "parse failures", "searches/q", "budget exhausted",
         "citation validity"], digits=3)
    abl = results.get("ablations") or []
    abl_md = markdown_table(
        [[a["ablation"], a["arm"], a["trajectories"], a["examples"], a["dev_accuracy_mean"],
          a["dev_difference"], a["dev_difference_se"], a["test_accuracy_mean"],
          a["test_difference"], a["test_difference_se"]] for a in abl],
        ["ablation (gen1 L variants)", "arm", "trajectories", "ranked examples", "dev acc",
         "vs first arm", "paired SE", "test acc", "vs first arm", "paired SE"], digits=1)
    figure = _plot(run, rows)
    run.write_text("report.md", f"""# ReST meets ReAct on a generated multi-hop world

Accuracy is the offline auto-eval (alias match) in %, mean ± std over sampled runs (T=0.5).
The paper's column is its Bamboogle auto-eval (PaLM 2 models), shown for the shape only: our
world, models and the scripted "prompted" policy are stand-ins (docs/rest_react.md).

{table}
"std" is over the sampled runs on one question set; "SE" is the question-set standard error
(how far the mean would move on other questions of the same kind), usually the larger.

![accuracy]({figure})

## Paired differences (same questions, points)

{paired}
A difference is clear when it is well over twice its paired SE.

## Process metrics (test)

{process}
## Ablations

{abl_md if abl else "not run (ablations=false)"}

Paper: 2 trajectories/question +2.2, 4 no further gain; ranker-selected data +9.0 over the
same amount of unfiltered data; self-checks +0.5-1.0.

Teacher demonstrations: {results['demonstrations']}
""")
