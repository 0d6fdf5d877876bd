"""What an experiment is, and how `tfkit run` drives one into a run directory."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfkit.config import ConfigError, apply_overrides, to_dict
from tfkit.runs import RunDir, read_json

__all__ = ["Experiment", "Headline", "run_experiment", "set_aside_other_run"]


@dataclass(frozen=True)
class Headline:
    """One row of the demo summary: our headline number beside the paper's."""

    metric: str
    ours: str
    paper: str


@dataclass(frozen=True)
class Experiment:
    """A registered experiment.

    Attributes:
        name: the CLI name (`tfkit run NAME`); its one-line summary lives in the registry
            (`tfkit.experiments.SUMMARIES`, so `tfkit list` imports no experiment).
        config_cls: a frozen dataclass; every field has a default (the full run). It must have
            `seed: int` and `data_dir: str | None` fields.
        run: `run(config, run_dir) -> results` writes plots and report.md into `run_dir`, uses
            `run_dir.stage(...)` for resumable stages, and returns the JSON-ready results dict
            (written to results.json by the driver).
        headline: `headline(results) -> Headline` for the demo table.
        quick: overrides for `--quick` (≤ 15-30 min on 2 cores with real data).
        demo: overrides for `tfkit demo` (embedded data only, about a minute on 2 cores).
        extendable: config fields a re-run into the same directory may change: the run then
            continues instead of refusing the directory (e.g. FedMD's `rounds`: "5 more rounds"
            resumes from the last finished round; `run` must handle the changed value).
        check: `check(config)` raises `ConfigError` for a resolved config whose fields do not
            fit together (e.g. a patch size that does not divide the images); `config()` calls
            it after every override, before any run directory is touched. Checks of one field
            belong in the config's `__post_init__`.
    """

    name: str
    config_cls: type
    run: Callable[[Any, RunDir], dict]
    headline: Callable[[dict], Headline]
    quick: Mapping[str, Any] = field(default_factory=dict)
    demo: Mapping[str, Any] = field(default_factory=dict)
    extendable: tuple[str, ...] = ()
    check: Callable[[Any], None] | None = None

    @property
    def summary(self) -> str:
        """The registry's one-line summary of this experiment."""
        from tfkit.experiments import SUMMARIES

        return SUMMARIES.get(self.name, "")

    def config(self, size: str = "full", overrides: Any = (), **fields: Any) -> Any:
        """The resolved config: defaults, then the size preset, then `fields`, then overrides."""
        cfg = self.config_cls()
        if size == "quick":
            cfg = apply_overrides(cfg, self.quick)
        elif size == "demo":
            cfg = apply_overrides(cfg, self.demo)
        elif size != "full":
            raise ConfigError(f"size must be full, quick or demo, not {size!r}")
        cfg = dataclasses.replace(cfg, **{k: v for k, v in fields.items() if v is not None})
        cfg = apply_overrides(cfg, overrides)
        if self.check is not None:
            self.check(cfg)
        return cfg


def _changed_fields(experiment: Experiment, config: Any, out: Path) -> tuple[dict, list[str]]:
    """(the previous run's config, the fields `config` changes) for a run folder `out`."""
    previous = out / "config.json"
    if not previous.exists():
        return {}, []
    # a field added to the Config after that run was made counts as its default there
    old = {**to_dict(experiment.config_cls()), **read_json(
        previous, dict, remedy="the config of the run in it is unknown: use another --out")}
    resolved = to_dict(config)
    return old, sorted(k for k in set(old) | set(resolved) if old.get(k) != resolved.get(k))


def _has_work(out: Path) -> bool:
    """Whether a run folder holds any file besides config.json (a stage record, checkpoint,
    model, data, results ...). A run that failed at its start, e.g. on missing data, has none."""
    return any(p.is_file() and p != out / "config.json" for p in out.rglob("*"))


def set_aside_other_run(experiment: Experiment, config: Any, out: str | Path) -> Path | None:
    """Renames `out` to `out.old`, `out.old2`, ... when it holds a run of another config (one
    that `run_experiment` would refuse); returns the new name, or None when nothing moved. For
    `tfkit demo`, whose folders are reused from run to run while its presets change."""
    out = Path(out)
    _, diff = _changed_fields(experiment, config, out)
    if not set(diff) - set(experiment.extendable) or not _has_work(out):
        return None
    n, target = 1, out.with_name(out.name + ".old")
    while target.exists():
        n += 1
        target = out.with_name(f"{out.name}.old{n}")
    out.rename(target)
    return target


def run_experiment(experiment: Experiment, config: Any, out: str | Path,
                   log: Callable[[str], None] | None = print) -> dict:
    """Runs `experiment` with `config` into `out`, resuming a previous run of the same config.

    A folder holding files but no run (no config.json) is refused (`ConfigError`), and so is
    a folder holding a run of another config, unless the fields
    that differ are `extendable`, or that run stopped before writing anything but its
    config.json (e.g. on a missing data file): its config is then replaced."""
    if experiment.check is not None:  # a config built in code, not through `config()`
        experiment.check(config)
    path = Path(out)
    if path.is_dir() and not (path / "config.json").exists() and _has_work(path):
        # not a run of ours (each writes config.json first): its report.md, results.json ...
        # would be overwritten
        raise ConfigError(f"{out} holds files but no tfkit run (no config.json); use another "
                          "--out, e.g. a new folder")
    run = RunDir(out, log=log)
    resolved = to_dict(config)
    old, diff = _changed_fields(experiment, config, run.path)
    if old:
        if diff and set(diff) <= set(experiment.extendable):
            run.log("continuing with " + ", ".join(f"{k} {old.get(k)} -> {resolved.get(k)}"
                                                   for k in diff))
        elif diff and not _has_work(run.path):
            run.log("replacing the config of a run that stopped before any work (fields "
                    f"differ: {', '.join(diff)})")
        elif diff:
            foreign = sorted(set(old) - set(resolved))
            if foreign:
                raise ConfigError(
                    f"{out} holds another experiment's run (or an older tfkit's): its "
                    f"config.json has fields {experiment.name} lacks ({', '.join(foreign)}); "
                    "use another --out")
            raise ConfigError(
                f"{out} holds a run of a different config (fields differ: {', '.join(diff)}); "
                "use another --out, or the same settings to resume it")
        run.log(f"resuming {experiment.name} in {out}")
    run.write_json("config.json", resolved)
    t0 = time.time()
    results = experiment.run(config, run)
    results = {**results, "experiment": experiment.name,
               "stage_seconds": run.stage_seconds(), "wall_seconds": time.time() - t0}
    run.write_json("results.json", results)
    run.log(f"results: {run.file('results.json')}")
    if run.file("report.md").exists():
        run.log(f"report:  {run.file('report.md')}")
    return results
