"""Model cards: what an exported model is, what it was trained on, how well it does, and the
commands that regenerate it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tfkit.export.source import ModelSource

__all__ = ["training_command", "model_card"]


def _preset(experiment: str, config: dict) -> str | None:
    """"quick", "demo" or "full" when `config` equals that preset of `experiment`."""
    try:
        from tfkit.config import to_dict
        from tfkit.experiments import get

        exp = get(experiment)
        for size in ("quick", "demo", "full"):
            preset = to_dict(exp.config(size))
            if {k: v for k, v in preset.items() if k != "data_dir"} == {
                    k: v for k, v in config.items() if k != "data_dir"}:
                return size
    except Exception:  # an experiment that cannot be imported here: fall back to --set
        return None
    return None


def _experiment_of(run_dir: Path | None) -> str | None:
    results = None if run_dir is None else run_dir / "results.json"
    if results is None or not results.exists():
        return None
    return json.loads(results.read_text()).get("experiment")


def training_command(source: ModelSource) -> str:
    """The `tfkit run` command that trains the source's run (from meta, else the run files)."""
    if source.meta.get("command"):
        return str(source.meta["command"])
    run_dir = source.run_dir
    if run_dir is None or not (run_dir / "config.json").exists():
        return f"(unknown: {source.path} was not saved by `tfkit run`)"
    config = json.loads((run_dir / "config.json").read_text())
    experiment = _experiment_of(run_dir)
    if not experiment:
        return f"(see {run_dir}/config.json; the run has no results.json)"
    size = _preset(experiment, config)
    if size == "demo" and run_dir.name == experiment:
        return f"uv run tfkit demo --only {experiment} --out {run_dir.parent}"
    flags = {"quick": " --quick", "full": ""}.get(size or "")
    if flags is None:  # the demo preset elsewhere, or a customised config: spell out fields
        flags = "".join(f" --set {k}={_cli_value(v)}" for k, v in config.items()
                        if k not in ("data_dir", "seed") and v is not None)
    data = "" if size == "demo" else " --data-dir ../shared/data"
    return (f"uv run tfkit run {experiment}{flags} --seed {config.get('seed', 0)} "
            f"--out {run_dir}{data}")


def _cli_value(value: Any) -> str:
    """A config value as `--set` parses it (sequences comma-separated, no spaces)."""
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def model_card(source: ModelSource, artifact: str, measured: dict[str, Any],
               export_command: str, details: str = "", kind: str | None = None) -> str:
    """Markdown model card.

    Args:
        source: the exported model and its meta.
        artifact: what was written ("SavedModel for TF Serving", "TFLite variants").
        measured: numbers measured on the exported artifact (e.g. held-out accuracy).
        export_command: the `tfkit export ...` command that wrote the artifact.
        details: extra markdown (signatures, parity table).
        kind: the kind the exporter served the model as (default: the meta's).
    """
    meta = source.meta
    training = meta.get("metrics") or {}
    experiment = meta.get("experiment") or _experiment_of(source.run_dir)
    trained_by = (f"`tfkit run {experiment}`" if experiment
                  else "unknown, no tfkit experiment recorded")
    lines = [f"# Model card: {source.name} ({artifact})", "",
             "## Model", "",
             f"- kind: {kind or meta.get('kind', 'unknown')}",
             f"- trained by: {trained_by} (`{source.run_dir or source.path}`)",
             f"- input shape: {meta.get('input_shape', 'see signatures')}",
             f"- description: {meta.get('description', 'n/a')}", "",
             "## Data", "",
             f"- dataset: `{meta.get('dataset', 'unknown')}` (`tfkit.datasets.load`)",
             f"- classes: {', '.join(map(str, meta.get('class_names', []))) or 'n/a'}", "",
             "## Metrics", "",
             "| metric | value | measured on |", "|---|---|---|"]
    for k, v in training.items():
        value = f"{v:.4f}" if isinstance(v, float) else v
        lines.append(f"| {k} | {value} | the training run's evaluation |")
    for k, v in measured.items():
        lines.append(f"| {k} | {v} | this exported artifact |")
    lines += ["", "## Regenerate", "", "```bash",
              f"{training_command(source)}", export_command, "```", ""]
    if details:
        lines += [details.rstrip(), ""]
    lines += ["## Limitations", "",
              "Trained at the reduced size of the run above on a 2-core CPU: a research "
              "reference, not a production model. Accuracy holds only for inputs like the "
              "training data (same size, value range and domain).", ""]
    return "\n".join(lines)


def write_card(path: str | os.PathLike, text: str) -> Path:
    from tfkit.runs import atomic_write_text

    return atomic_write_text(path, text)
