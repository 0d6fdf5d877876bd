"""The rest-react experiment's demo preset end to end, and resume."""

import json

import pytest

from tfkit.config import ConfigError
from tfkit.experiments import get, run_experiment


def test_demo_preset_runs_and_resumes(tmp_path):
    exp = get("rest-react")
    cfg = exp.config("demo")
    logs: list[str] = []
    results = run_experiment(exp, cfg, tmp_path, log=logs.append)
    names = [(r["name"], r["model"]) for r in results["iterations"]]
    assert names == [("initial", "L"), ("gen1", "L"), ("gen1", "S"), ("gen1", "XS")]
    row = results["iterations"][0]
    for key in ("params", "dev_accuracy_mean", "dev_accuracy_std", "test_accuracy_mean"):
        assert key in row
    assert set(results["process"]) == {"parse_failure_rate", "searches_per_question",
                                       "budget_exhausted_rate", "citation_validity"}
    assert [(p["before"], p["after"]) for p in results["paired_differences"]] == [
        ("initial L", "gen1 L"), ("initial L", "gen1 XS")]
    first_gain = results["paired_differences"][0]["test_difference"]
    rows = {(r["name"], r["model"]): r for r in results["iterations"]}
    assert first_gain == pytest.approx(rows["gen1", "L"]["test_accuracy_mean"]
                                       - rows["initial", "L"]["test_accuracy_mean"])
    assert row["test_accuracy_se"] is not None and row["test_accuracy_se"] >= 0
    sizes = {r["model"]: r["params"] for r in results["iterations"]}
    assert sizes["XS"] < sizes["S"] < sizes["L"]
    lines = (tmp_path / "trajectories.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert len(lines) == cfg.train_questions and first["steps"][0]["samples"]
    assert {"ranking", "target"} & set().union(*(s.keys() for s in first["steps"])) or \
        all(s["chosen"] is None for s in first["steps"])
    assert (tmp_path / "report.md").exists() and (tmp_path / "accuracy.png").exists()
    # a second run into the same folder reuses every stage
    logs.clear()
    again = run_experiment(exp, cfg, tmp_path, log=logs.append)
    assert not any(line.endswith(": running") for line in logs)
    assert again["iterations"] == results["iterations"]
    assert again["ablations"] == []


def test_ablations_extend_a_finished_run(tmp_path):
    import dataclasses

    exp = get("rest-react")
    cfg = exp.config("demo", train_questions=6, dev_questions=4, test_questions=4)
    first = run_experiment(exp, cfg, tmp_path, log=None)
    logs: list[str] = []
    results = run_experiment(exp, dataclasses.replace(cfg, ablations=True), tmp_path,
                             log=logs.append)
    assert results["iterations"] == first["iterations"]  # no earlier stage ran again
    assert not any("train_gen1_L: running" in line or "train_initial_L: running" in line
                   for line in logs)
    arms = [(a["ablation"], a["arm"]) for a in results["ablations"]]
    assert arms == [("trajectories per question", "1x"), ("trajectories per question", "2x"),
                    ("trajectories per question", "4x"), ("fine-tuning targets", "ranker"),
                    ("fine-tuning targets", "perplexity"), ("self-checks", "on"),
                    ("self-checks", "off")]
    by_arm = {a["arm"]: a for a in results["ablations"]}
    assert [by_arm[k]["trajectories"] for k in ("1x", "2x", "4x")] == [6, 12, 24]
    assert by_arm["perplexity"]["trajectories"] == 6  # gen1's rollouts, other targets
    for row in results["ablations"]:
        assert 0 <= row["dev_accuracy_mean"] <= 100 and 0 <= row["test_accuracy_mean"] <= 100
    assert "## Ablations" in (tmp_path / "report.md").read_text()
    with pytest.raises(ConfigError, match="fields differ: seed"):  # other fields still refused
        run_experiment(exp, dataclasses.replace(cfg, ablations=True, seed=1), tmp_path, log=None)


def test_demonstration_and_rest_question_sets(tmp_path):
    from tfkit.agents.rest.pipeline import _Runner
    from tfkit.runs import RunDir

    exp = get("rest-react")
    cfg = exp.config("demo", train_questions=6, demo_questions=20, train_hops=(4,))
    runner = _Runner(cfg, RunDir(tmp_path, log=None))
    assert len(runner.world.train) == 20  # demonstrations cover 20 questions
    assert runner.rest_questions == runner.world.train[:6]  # ReST grows on the first 6
    assert {q["hops"] for q in runner.world.train} == {4}
    assert {q["hops"] for q in runner.world.dev} == {2}
    quick = exp.config("quick")
    assert quick.demo_questions >= quick.train_questions


def test_each_generation_restarts_from_the_base_unless_asked_to_warm_start():
    from tfkit.agents.rest.pipeline import _init

    cfg = get("rest-react").config("quick")
    assert cfg.restart_from_base and cfg.keep_data
    assert [_init(cfg, g, "L", f"gen{g - 1}_L") for g in (1, 2)] == ["initial_L", "initial_L"]
    assert _init(cfg, 2, "S", "gen1_L") is None  # S and XS start from fresh weights
    warm = get("rest-react").config("quick", restart_from_base=False)
    assert _init(warm, 2, "L", "gen1_L") == "gen1_L"
    assert _init(warm, 2, "XS", "gen1_L") == "gen1_XS"
    assert _init(warm, 1, "S", "initial_L") is None


def test_growing_may_sample_hotter_and_more_than_evaluation():
    cfg = get("rest-react").config("quick", grow_temperature=1.0, grow_num_samples=16)
    grow, evaluate = cfg.agent("L", grow=True), cfg.agent("L")
    assert (grow.temperature, grow.num_samples) == (1.0, 16)
    assert (evaluate.temperature, evaluate.num_samples) == (cfg.temperature, cfg.num_samples)
    default = get("rest-react").config("quick").agent("XS", grow=True)
    assert (default.temperature, default.num_samples) == (0.5, 8)  # unset: evaluation's


def test_quick_preset_xs_is_at_least_50x_smaller_than_l():
    from tfkit.agents.rest.finetune import ModelSpec, build_lm

    cfg = get("rest-react").config("quick")
    vocab = 227  # the quick world's tokenizer (stop 12 / 13 runs)
    params = {k: build_lm(ModelSpec(*spec), vocab, cfg.sequence_length).count_params()
              for k, spec in (("L", cfg.l_spec), ("XS", cfg.xs_spec))}
    assert params["L"] >= 50 * params["XS"], params


def test_unset_options_are_none_and_non_positive_values_are_refused():
    from tfkit.config import ConfigError

    experiment = get("rest-react")
    for field in ("xs_epochs", "xs_learning_rate", "grow_num_samples"):
        for bad in (0, -1):
            with pytest.raises(ConfigError, match=f"{field} must be positive"):
                experiment.config("quick", overrides=[f"{field}={bad}"])
    cfg = experiment.config("quick", overrides=["xs_epochs=none", "xs_learning_rate=none",
                                                "grow_num_samples=none"])
    assert (cfg.xs_epochs, cfg.xs_learning_rate) == (None, None)
    assert cfg.agent("L", grow=True).num_samples == cfg.num_samples


@pytest.mark.parametrize("override, message", [
    ("generations=0", "generations must be at least 1"),
    ("eval_runs=0", "eval_runs must be at least 1"),
    ("dev_questions=0", "dev_questions must be at least 1"),
    ("num_samples=0", "num_samples must be at least 1"),
    ("max_searches=0", "max_searches must be at least 1"),
    ("max_new_tokens=0", "max_new_tokens must be at least 1"),
    ("l_spec=2,72,4", "l_spec must be 4 positive ints"),
    ("xs_spec=2,0,1,8", "xs_spec must be 4 positive ints"),
    ("temperature=-0.5", "temperature must be a finite number"),
    ("grow_temperature=nan", "grow_temperature: expected a finite number"),  # (--set parsing)
    ("max_new_tokens=192", "must be below sequence_length"),
    ("documents=docs.txt", "documents needs questions_csv"),
    ("strategy=mirrorred", "strategy must be one of"),
    ("l_spec=2,70,4,288", "l_spec: width 70 is not divisible by its 4 heads"),
    ("learning_rate=0", "learning_rate must be a finite number > 0"),
    ("learning_rate=nan", "learning_rate: expected a finite number"),  # (--set parsing)
    ("xs_learning_rate=nan", "xs_learning_rate: expected a finite number"),  # (--set parsing)
    ("epochs=0", "epochs must be at least 1"),
    ("epochs_initial=0", "epochs_initial must be at least 1"),
    ("teacher_noise=1.5", "teacher_noise must be a probability"),
    ("label_smoothing=1", "label_smoothing must be in"),
    ("people=0", "people must be at least 1"),
    ("countries=0", "countries must be at least 1"),
    ("seed=-1", "seed must be in"),
])
def test_values_that_would_fail_late_are_refused_at_once(override, message):
    with pytest.raises(ConfigError, match=message):
        get("rest-react").config("quick", overrides=[override])


@pytest.mark.parametrize("field, message", [
    ("grow_temperature", "grow_temperature must be a finite number"),
    ("learning_rate", "learning_rate must be a finite number > 0"),
    ("xs_learning_rate", "xs_learning_rate must be positive")])
def test_a_nan_given_in_code_is_refused_by_the_config_itself(field, message):
    from tfkit.experiments.rest_react import Config

    with pytest.raises(ConfigError, match=message):
        Config(**{field: float("nan")})


def test_train_hops_must_not_be_empty():
    from tfkit.experiments.rest_react import Config

    with pytest.raises(ConfigError, match="train_hops"):
        Config(train_hops=())


def test_user_questions_and_documents_enter_the_tokenizer_and_one_question_has_no_se(tmp_path):
    from tfkit.agents.rest.pipeline import _paired, _Runner, _se
    from tfkit.runs import RunDir

    (tmp_path / "q.csv").write_text("question,answer\nwho founded Zorblax ?,Quintessa Vrell\n")
    (tmp_path / "docs.txt").write_text("Quintessa Vrell founded Zorblax .\n")
    cfg = get("rest-react").config("demo", questions_csv=str(tmp_path / "q.csv"),
                                   documents=str(tmp_path / "docs.txt"))
    runner = _Runner(cfg, RunDir(tmp_path / "run", log=None))
    runner.data("demonstrations").parent.mkdir(parents=True)
    runner.data("demonstrations").write_text("")
    vocabulary = set(runner.tokenizer().vocabulary)
    assert {"Zorblax", "Quintessa", "Vrell"} <= vocabulary  # not spelled letter by letter
    one = {"test_question_accuracy": [100.0]}  # a one-question CSV: no standard error
    assert _se(one, "test") is None
    assert _paired(one, one)["test_difference_se"] is None
    assert _paired(one, one)["test_difference"] == 0.0


def test_docs_state_which_rest_questions_the_full_config_demonstrates():
    """The full Config grows on more questions than it demonstrates (docs used to say the
    reverse: that the ReST set is the first `train_questions` of the demonstrated ones)."""
    from pathlib import Path

    full = get("rest-react").config("full")
    assert full.train_questions > full.demo_questions
    docs = " ".join((Path(__file__).parents[2] / "docs/rest_react.md").read_text().split())
    assert (f"full Config: {full.demo_questions:,} of the {full.train_questions:,} ReST "
            "questions were demonstrated") in docs
    assert "the first `train_questions` of which are also the ReST question set" not in docs
