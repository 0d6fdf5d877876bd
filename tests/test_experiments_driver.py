"""The run driver: config.json, results.json, resume, and refusal of a mismatched config."""

from dataclasses import dataclass

import pytest

from tfkit.config import ConfigError
from tfkit.experiments import Experiment, Headline, run_experiment


@dataclass(frozen=True)
class ToyConfig:
    """Toy experiment: `steps` stages that each record their index."""

    seed: int = 0
    data_dir: str | None = None
    steps: int = 3


CALLS: list[int] = []


def toy_run(cfg: ToyConfig, run) -> dict:
    values = [run.stage(f"step_{i}", lambda i=i: CALLS.append(i) or i * cfg.seed)
              for i in range(cfg.steps)]
    run.write_text("report.md", f"# toy\n\n{values}\n")
    return {"values": values}


TOY = Experiment("toy", ToyConfig, toy_run,
                 lambda r: Headline("sum", str(sum(r["values"])), "-"),
                 quick={"steps": 2}, demo={"steps": 1})


def test_presets_and_overrides():
    assert TOY.config("quick").steps == 2 and TOY.config("demo").steps == 1
    assert TOY.config("full", ["steps=5"], seed=4).seed == 4
    with pytest.raises(ConfigError):
        TOY.config("huge")


def test_run_writes_contract_files_and_resumes(tmp_path):
    CALLS.clear()
    cfg = TOY.config("full", seed=2)
    results = run_experiment(TOY, cfg, tmp_path, log=None)
    assert results["values"] == [0, 2, 4] and CALLS == [0, 1, 2]
    for name in ("config.json", "results.json", "report.md"):
        assert (tmp_path / name).exists()
    # Simulate a crash after stage 1: its record survives, the rest re-run.
    (tmp_path / "stages" / "step_2.json").unlink()
    run_experiment(TOY, cfg, tmp_path, log=None)
    assert CALLS == [0, 1, 2, 2]


def test_mismatched_config_is_refused(tmp_path):
    run_experiment(TOY, TOY.config("full"), tmp_path, log=None)
    with pytest.raises(ConfigError, match="different config.*steps"):
        run_experiment(TOY, TOY.config("full", ["steps=4"]), tmp_path, log=None)


def test_experiment_summary_comes_from_the_registry():
    from tfkit import experiments

    for name in ("lazy-neuron", "rest-react"):  # (fedmd would import TFF, ~20 s)
        assert experiments.get(name).summary == experiments.SUMMARIES[name]


def test_a_field_added_since_the_run_counts_as_its_default(tmp_path):
    import json

    cfg = TOY.config("full")
    run_experiment(TOY, cfg, tmp_path, log=None)
    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["steps"]  # as if the run was made before `steps` existed
    (tmp_path / "config.json").write_text(json.dumps(saved))
    run_experiment(TOY, cfg, tmp_path, log=None)  # default value: resumed
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match="different config.*steps"):
        run_experiment(TOY, TOY.config("full", ["steps=4"]), tmp_path, log=None)


def test_demo_sets_aside_a_folder_holding_another_config(tmp_path):
    from tfkit.experiments.base import set_aside_other_run

    out = tmp_path / "toy"
    cfg = TOY.config("demo")
    assert set_aside_other_run(TOY, cfg, out) is None  # nothing there yet
    run_experiment(TOY, cfg, out, log=None)
    assert set_aside_other_run(TOY, cfg, out) is None  # same config: resumed, not moved
    other = TOY.config("demo", ["steps=2"])
    assert set_aside_other_run(TOY, other, out) == tmp_path / "toy.old"
    assert (tmp_path / "toy.old" / "results.json").exists() and not out.exists()
    run_experiment(TOY, other, out, log=None)
    assert set_aside_other_run(TOY, cfg, out) == tmp_path / "toy.old2"  # nothing overwritten


def test_a_folder_whose_run_failed_before_any_work_takes_the_corrected_config(tmp_path):
    def failing(cfg, run):
        raise FileNotFoundError("no data")  # e.g. a missing dataset file, before any stage

    broken = Experiment("toy", ToyConfig, failing, TOY.headline)
    with pytest.raises(FileNotFoundError):
        run_experiment(broken, TOY.config("full", ["steps=4"]), tmp_path, log=None)
    results = run_experiment(TOY, TOY.config("full"), tmp_path, log=None)  # e.g. fixed --set
    assert results["values"] == [0, 0, 0]
    # Once a stage or a checkpoint exists, another config is refused again.
    with pytest.raises(ConfigError, match="different config.*steps"):
        run_experiment(TOY, TOY.config("full", ["steps=4"]), tmp_path, log=None)
    (tmp_path / "stages" / "step_0.json").unlink()
    (tmp_path / "stages" / "step_1.json").unlink()
    (tmp_path / "stages" / "step_2.json").unlink()
    (tmp_path / "results.json").unlink()
    (tmp_path / "checkpoints" / "step_0").mkdir()
    (tmp_path / "checkpoints" / "step_0" / "weights.h5").write_text("x")
    with pytest.raises(ConfigError, match="different config.*steps"):
        run_experiment(TOY, TOY.config("full", ["steps=4"]), tmp_path, log=None)


def test_a_folder_of_another_experiment_is_named_as_such(tmp_path):
    @dataclass(frozen=True)
    class OtherConfig:
        seed: int = 0
        data_dir: str | None = None
        rounds: int = 3

    other = Experiment("other", OtherConfig, lambda cfg, run: run.stage("x", lambda: 1) and {},
                       TOY.headline)
    run_experiment(other, other.config("full"), tmp_path, log=None)
    with pytest.raises(ConfigError, match="another experiment's run.*rounds"):
        run_experiment(TOY, TOY.config("full"), tmp_path, log=None)


def test_run_experiment_applies_the_experiment_check_to_a_config_built_in_code(tmp_path):
    import dataclasses

    def at_most_two_steps(cfg: ToyConfig) -> None:
        if cfg.steps > 2:
            raise ConfigError(f"steps must be at most 2, got {cfg.steps}")

    checked = dataclasses.replace(TOY, check=at_most_two_steps)
    with pytest.raises(ConfigError, match="at most 2"):
        run_experiment(checked, ToyConfig(steps=3), tmp_path / "run", log=None)
    assert not (tmp_path / "run").exists()  # refused before any folder is written


@pytest.mark.parametrize("text", ['{"seed": 0, "ste', '[0, 3]'])
def test_a_corrupt_config_json_is_a_clear_error_naming_it(tmp_path, text):
    from tfkit.errors import TfkitError

    (tmp_path / "config.json").write_text(text)
    # was a JSONDecodeError / TypeError traceback
    with pytest.raises(TfkitError, match=f"{tmp_path / 'config.json'}.*another --out"):
        run_experiment(TOY, TOY.config("full"), tmp_path, log=None)
    assert (tmp_path / "config.json").read_text() == text


def test_a_folder_of_other_files_is_refused_before_any_work(tmp_path):
    (tmp_path / "report.md").write_text("my notes")  # e.g. --out . in a project folder
    CALLS.clear()
    with pytest.raises(ConfigError, match=f"{tmp_path} holds files but no tfkit run"):
        run_experiment(TOY, TOY.config("full"), tmp_path, log=None)
    assert CALLS == [] and (tmp_path / "report.md").read_text() == "my notes"  # was replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]
    run_experiment(TOY, TOY.config("full"), tmp_path / "run", log=None)  # a new folder: fine
    run_experiment(TOY, TOY.config("full"), tmp_path / "run", log=None)  # and its resume
