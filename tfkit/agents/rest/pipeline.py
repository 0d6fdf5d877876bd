"""The `rest-react` experiment as resumable stages (used by tfkit/experiments/rest_react.py).

    demonstrations   the noisy scripted teacher acts on the first `demo_questions` training
                     questions (the "prompted" data); the ReST question set is the first
                     `train_questions` of the same list (full Config: 2,000, of which the
                     first 1,000 are demonstrated)
    train_initial_L  the initial policy (stand-in for the paper's prompted large model)
    grow_genG        the previous L policy rolls out on the training questions (no labels)
    train_genG_SIZE  fine-tune L and distil S, XS on the ranked targets: by default L from the
                     initial L (the base) and S, XS from fresh weights, every generation
    eval_NAME        auto-eval on dev and test, mean ± std over `eval_runs` sampled runs
    abl_*            gen1 L variants: trajectories per question 2x/4x, perplexity targets,
                     self-checks off (Config.ablations; may be switched on to extend a run)
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

import tfkit.models  # noqa: F401  (registers DecoderLM for loading)
from tfkit.agents.autoeval import evaluate_answers, paired_difference, question_set_se
from tfkit.agents.ranker import OfflineRater
from tfkit.agents.rest.finetune import ModelSpec, finetune, make_strategy
from tfkit.agents.rest.grow import read_jsonl, write_jsonl
from tfkit.agents.rest.improve import improve
from tfkit.agents.rest.loop import evaluate_policy, run_generation
from tfkit.agents.sampler import KerasLM
from tfkit.agents.tokenizer import WordTokenizer
from tfkit.agents.world import ScriptedTeacher, build_world
from tfkit.backend import set_seed
from tfkit.runs import RunDir

if TYPE_CHECKING:  # the experiment module imports this one
    from tfkit.experiments.rest_react import Config

__all__ = ["run_rest_react"]

SIZES = ("L", "S", "XS")
PAPER = {("initial", "L"): 70.3, ("gen1", "L"): 74.0, ("gen1", "S"): 61.9, ("gen1", "XS"): 54.4,
         ("gen2", "L"): 76.1, ("gen2", "S"): 69.7, ("gen2", "XS"): 65.9}


class _Runner:
    def __init__(self, cfg, run_dir: RunDir):
        self.cfg, self.run = cfg, run_dir
        self.world = build_world(cfg.seed, people=cfg.people, cities=cfg.cities,
                                 countries=cfg.countries, companies=cfg.companies,
                                 train=max(cfg.train_questions, cfg.demo_questions),
                                 dev=cfg.dev_questions,
                                 test=cfg.test_questions, questions_csv=cfg.questions_csv,
                                 documents=cfg.documents, train_hops=tuple(cfg.train_hops))
        self.specs = {"L": ModelSpec(*cfg.l_spec), "S": ModelSpec(*cfg.s_spec),
                      "XS": ModelSpec(*cfg.xs_spec)}
        self._models: dict = {}
        self._strategy = None
        self.rest_questions = self.world.train[:cfg.train_questions]  # grown, never labelled

    def data(self, name: str) -> Path:
        return self.run.file("data") / f"{name}.jsonl"

    def demonstrations(self) -> dict:
        teacher = ScriptedTeacher(self.cfg.teacher_noise, self.cfg.seed)
        trajs, examples = run_generation(teacher, self.world.search,
                                         self.world.train[:self.cfg.demo_questions],
                                         agent_config=self.cfg.agent(), targets="perplexity",
                                         seed=self.cfg.seed)
        write_jsonl(self.data("demonstrations"), examples)
        return {"examples": len(examples), **dict(evaluate_answers(trajs))}

    def tokenizer(self) -> WordTokenizer:
        path = self.run.file("tokenizer.json")
        if not path.exists():
            texts = [d.text for d in self.world.documents + self.world.test_documents]
            texts += [q["question"] for q in self.world.train + self.world.dev + self.world.test]
            texts += [e["prompt"] + " " + e["output"] for e in read_jsonl(self.data(
                "demonstrations"))]
            self.run.write_text("tokenizer.json", WordTokenizer.fit(texts).to_json())
        return WordTokenizer.from_json(path.read_text())

    @property
    def strategy(self):
        """The Config's `tf.distribute` strategy, made once: it fine-tunes every model, holds
        the loaded ones (built in its scope) and splits rollouts' decode batches across its
        replicas."""
        if self._strategy is None:
            self._strategy = make_strategy(self.cfg.strategy)
        return self._strategy

    def model(self, name: str):
        if name not in self._models:
            with self.strategy.scope():
                self._models[name] = self.run.load_model(name)
        return self._models[name]

    def train(self, name: str, examples_files: str | list[str], size: str, epochs: int,
              init: str | None) -> dict:
        files = [examples_files] if isinstance(examples_files, str) else examples_files

        def fn():
            examples = [e for f in files for e in read_jsonl(self.data(f))]
            fallback = not examples  # no step of any rollout parsed: learn the format again
            if fallback:
                self.run.log(f"{files}: no valid targets; training on demonstrations")
                examples = read_jsonl(self.data("demonstrations"))
            model, history = finetune(
                examples, self.tokenizer(), self.specs[size],
                sequence_length=self.cfg.sequence_length, epochs=epochs,
                directory=self.run.checkpoint_dir(name), batch_size=self.cfg.batch_size,
                learning_rate=(self.cfg.xs_learning_rate if size == "XS"
                               and self.cfg.xs_learning_rate is not None
                               else self.cfg.learning_rate),
                init_from=self.model(init) if init else None, strategy=self.strategy,
                mixed=self.cfg.mixed_precision, seed=self.cfg.seed,
                label_smoothing=self.cfg.label_smoothing, log=self.run.log)
            self.run.save_model(model, name, {"kind": "agent_policy", "size": size})
            self._models[name] = model
            return {"params": model.count_params(), "examples": len(examples),
                    "fallback_to_demonstrations": fallback,
                    "final_loss": history.get("loss", [None])[-1]}
        return self.run.stage(f"train_{name}", fn)

    def lm(self, name: str) -> KerasLM:
        return KerasLM(self.model(name), self.tokenizer(), strategy=self.strategy,
                       jit_compile=self.cfg.jit_compile)

    def evaluate(self, name: str, size: str, dev: bool = True, self_checks: bool = True) -> dict:
        def fn():
            agent = self.cfg.agent(size, self_checks)
            out = {}
            sets = [("dev", self.world.dev, self.world.search)] if dev else []
            sets.append(("test", self.world.test, self.world.test_search))
            for split, questions, search in sets:
                r = evaluate_policy(self.lm(name), search, questions, agent_config=agent,
                                    runs=self.cfg.eval_runs, seed=self.cfg.seed)
                out.update({f"{split}_{k}": v for k, v in r.items()})
            return out
        tag = "" if self_checks else "_nochecks"
        return self.run.stage(f"eval_{name}{tag}", fn)

    def grow(self, name: str, policy: str, per_question: int, targets: str = "ranker") -> dict:
        def fn():
            trajs, examples = run_generation(
                self.lm(policy), self.world.search, self.rest_questions,
                agent_config=self.cfg.agent(grow=True), ranker=OfflineRater(),
                trajectories_per_question=per_question, targets=targets, seed=self.cfg.seed)
            write_jsonl(self.data(f"{name}_examples"), examples)
            write_jsonl(self.data(f"{name}_trajectories"), [{"generation": name, **t}
                                                            for t in trajs])
            return {"examples": len(examples), "trajectories": len(trajs),
                    **dict(evaluate_answers(trajs))}
        return self.run.stage(f"grow_{name}", fn)


def _row(name: str, size: str, train: dict, ev: dict) -> dict:
    return {"name": name, "model": size, "params": train["params"],
            "dev_accuracy_mean": ev.get("dev_accuracy_mean"),
            "dev_accuracy_std": ev.get("dev_accuracy_std"),
            "dev_accuracy_se": _se(ev, "dev"),
            "test_accuracy_mean": ev["test_accuracy_mean"],
            "test_accuracy_std": ev["test_accuracy_std"],
            "test_accuracy_se": _se(ev, "test"),
            "paper_bamboogle": PAPER.get((name, size)),
            "process": {k: ev[f"test_{k}_mean"] for k in (
                "parse_failure_rate", "searches_per_question", "budget_exhausted_rate",
                "citation_validity")}}


def _se(ev: dict, split: str) -> float | None:
    """The question-set standard error (None for evaluations recorded before it was kept)."""
    acc = ev.get(f"{split}_question_accuracy")
    return question_set_se(acc) if acc and len(acc) > 1 else None  # (a 1-question CSV: none)


def _paired(before: dict, after: dict) -> dict:
    """after - before on the same dev and test questions, with the paired standard error."""
    out = {}
    for split in ("dev", "test"):
        a, b = before.get(f"{split}_question_accuracy"), after.get(f"{split}_question_accuracy")
        diff, se = paired_difference(a, b) if a and b and len(a) > 1 else (None, None)
        if a and b and len(a) == len(b) == 1:  # a one-question CSV: no standard error
            diff = b[0] - a[0]
        out.update({f"{split}_difference": diff, f"{split}_difference_se": se})
    return out


def run_rest_react(cfg: Config, run: RunDir) -> dict:
    set_seed(cfg.seed)
    r = _Runner(cfg, run)
    demo = run.stage("demonstrations", r.demonstrations)
    train = r.train("initial_L", "demonstrations", "L", cfg.epochs_initial, None)
    evals = {("initial", "L"): r.evaluate("initial_L", "L")}
    rows = [_row("initial", "L", train, evals["initial", "L"])]
    grows, policy = {}, "initial_L"
    for g in range(1, cfg.generations + 1):
        gen = f"gen{g}"
        grows[gen] = r.grow(gen, policy, cfg.trajectories_per_question)
        data = [f"gen{k}_examples" for k in range(1 if cfg.keep_data else g, g + 1)]
        for size in SIZES:
            init = _init(cfg, g, size, policy)
            epochs = cfg.epochs if init else cfg.epochs_initial
            epochs = cfg.xs_epochs if size == "XS" and cfg.xs_epochs is not None else epochs
            train = r.train(f"{gen}_{size}", data, size, epochs, init)
            evals[gen, size] = r.evaluate(f"{gen}_{size}", size)
            rows.append(_row(gen, size, train, evals[gen, size]))
        policy = f"{gen}_L"
    # the comparisons the paper's Table 1 makes, paired over the same questions
    chain = [("initial", "L")] + [(f"gen{g}", "L") for g in range(1, cfg.generations + 1)]
    last = chain[-1][0]
    pairs = list(pairwise(chain)) + [(("initial", "L"), (last, "XS"))]
    paired = [{"before": f"{a[0]} {a[1]}", "after": f"{b[0]} {b[1]}",
               **_paired(evals[a], evals[b])} for a, b in pairs if b in evals]
    ablations = _ablations(r, grows["gen1"]) if cfg.ablations else []
    trajectories = [run.file("data") / f"gen{g}_trajectories.jsonl"
                    for g in range(1, cfg.generations + 1)]
    with run.file("trajectories.jsonl").open("w", encoding="utf-8") as f:
        for path in trajectories:
            f.write(path.read_text(encoding="utf-8"))
    results = {"iterations": rows, "process": rows[len(rows) - 3]["process"],
               "generations": cfg.generations, "demonstrations": demo, "grow": grows,
               "paired_differences": paired, "ablations": ablations}
    from tfkit.agents.rest.report import write_report
    write_report(run, results)
    return results


def _init(cfg, generation: int, size: str, policy: str) -> str | None:
    """The model a generation's fine-tune starts from (None: fresh weights)."""
    if cfg.restart_from_base:  # the paper: every generation fine-tunes the base model
        return "initial_L" if size == "L" else None
    if size == "L":  # warm start from the previous generation's model of the same size
        return policy
    return f"gen{generation - 1}_{size}" if generation > 1 else None


def _ablations(r: _Runner, gen1: dict) -> list[dict]:
    """Gen-1 L variants against gen1 L, on dev and test: data quantity (trajectories per
    question), data quality (ranker vs perplexity targets) and self-checks on/off.

    Every trained variant fine-tunes the initial L for `epochs` on data grown by the initial L,
    as gen1 L does (`gen1` is its grow stage's result); one training run per arm, so those arms
    also differ by training noise. The self-check arms are gen1 L itself, evaluated both ways.
    """
    cfg = r.cfg
    arms = [("trajectories per question", "1x", "gen1_L", True, gen1)]
    for k in (2, 4):
        grown = r.grow(f"abl_{k}x", "initial_L", k)
        r.train(f"abl_{k}x_L", f"abl_{k}x_examples", "L", cfg.epochs, "initial_L")
        arms.append(("trajectories per question", f"{k}x", f"abl_{k}x_L", True, grown))
    ppl = r.run.stage("improve_abl_ppl", lambda: len(write_jsonl(  # same rollouts, other targets
        r.data("abl_ppl_examples"), improve(read_jsonl(r.data("gen1_trajectories")), None,
                                            "perplexity")).read_text().splitlines()))
    r.train("abl_ppl_L", "abl_ppl_examples", "L", cfg.epochs, "initial_L")
    arms += [("fine-tuning targets", "ranker", "gen1_L", True, gen1),
             ("fine-tuning targets", "perplexity", "abl_ppl_L", True, {**gen1, "examples": ppl}),
             ("self-checks", "on", "gen1_L", True, gen1),
             ("self-checks", "off", "gen1_L", False, gen1)]
    rows, reference = [], {}
    for ablation, arm, model, self_checks, grown in arms:
        ev = r.evaluate(model, "L", self_checks=self_checks)
        ref = reference.setdefault(ablation, ev)  # the ablation's first arm
        rows.append({"ablation": ablation, "arm": arm, "model": model, **_paired(ref, ev),
                     "trajectories": grown["trajectories"], "examples": grown["examples"],
                     **{k: ev.get(k) for k in ("dev_accuracy_mean", "dev_accuracy_std",
                                               "test_accuracy_mean", "test_accuracy_std",
                                               "test_parse_failure_rate_mean",
                                               "test_searches_per_question_mean")}})
    return rows
