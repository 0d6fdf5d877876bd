"""ReST meets ReAct (2023): a search agent improves itself from AI feedback, then distils.

    uv run tfkit run rest-react --quick --out runs/rest-react-quick

See `Config` for the full run and docs/rest_react.md for the stand-ins (generated world, scripted
noisy teacher as the prompted model, offline rater and judge).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tfkit.agents.react.agent import AgentConfig
from tfkit.agents.rest.finetune import STRATEGIES
from tfkit.agents.rest.pipeline import run_rest_react
from tfkit.config import ConfigError, require_at_least
from tfkit.experiments.base import Experiment, Headline

__all__ = ["Config", "EXPERIMENT"]


@dataclass(frozen=True)
class Config:
    """The full run: `uv run tfkit run rest-react --out runs/rest-react`.

    Expected (shape of the paper's Table 1 on the test set): L initial < gen1 < gen2 with the
    std shrinking; XS after gen2 within ~5 points of the initial L policy. The quick preset
    (`--quick`: 25.8 min on 2 idle cores, 1,978 CPU-s on one thread) grows 600 ReST questions
    (not 2,000), evaluates on the full dev 125 / test 100 sets with 5 runs (not 10) and reaches
    part of that: L test 5.8 -> 8.0 -> 11.0 (dev 21.3 -> 35.8 -> 32.0; 2 threads: test 5.0 ->
    9.8 -> 12.0), S (30k) gen2 7.6, XS (3.2k params) 0.6 -> 1.0; a question-set standard error
    is ~2.5-3 test points, more than the std over runs; see docs/RESULTS.md.
    """

    seed: int = 0
    data_dir: str | None = None
    # world (ignored when questions_csv + documents are given)
    people: int = 160  # person entities; names are new combinations of shared name words
    cities: int = 48
    countries: int = 10
    companies: int = 40
    questions_csv: str | None = None  # Bamboogle-style question,answer CSV (eval questions)
    documents: str | None = None  # one document per line (the user's collection)
    train_questions: int = 2000  # the paper's ReST question set size (the first
    # `demo_questions` of them, if fewer, also get teacher demonstrations)
    train_hops: tuple[int, ...] = (2, 3, 4)  # hops of the training (and demonstration)
    # questions: the test set's 2-4 (a model trained from scratch on 2-3 hops cannot even
    # start a 4-hop question: 0 parsed first decisions on them)
    dev_questions: int = 125  # 2-hop, held-out entities
    test_questions: int = 100  # 2-4 hops, held-out entities
    demo_questions: int = 1000  # teacher demonstrations the initial policy is trained on: a
    # model trained from scratch only copies held-out entity names from question and snippets
    # into its queries after seeing many distinct ones (100 questions: 3% dev; 600: 16%)
    teacher_noise: float = 0.3  # chance a teacher sample makes a mistake
    # agent
    num_samples: int = 4  # samples per step (the paper's 4)
    xs_num_samples: int = 16  # the paper samples 16 for its smallest model
    temperature: float = 0.5
    grow_temperature: float | None = None  # temperature when growing ReST data (None: the
    # paper's `temperature`); higher gives the ranker more distinct samples per step
    grow_num_samples: int | None = None  # samples per step when growing (None: `num_samples`)
    max_searches: int = 10
    max_new_tokens: int = 40  # step outputs are short calls
    relevance_sees_past: bool = False  # the relevance self-check also sees PAST_ACTIONS; only
    # then does the scripted teacher demonstrate revisions (an answer from an earlier finding),
    # so only then can the trained policies' self-checks change an answer
    # models: (layers, hidden, heads, mlp width); XS has >= 50x fewer parameters than L
    sequence_length: int = 224
    l_spec: tuple[int, ...] = (3, 96, 4, 384)
    s_spec: tuple[int, ...] = (2, 32, 2, 128)
    xs_spec: tuple[int, ...] = (1, 8, 2, 16)
    # ReST
    generations: int = 2
    trajectories_per_question: int = 1
    epochs_initial: int = 3  # the initial policy learns the step format from scratch
    epochs: int = 3  # fine-tunes that start from a trained model (L from the initial L);
    # models trained from fresh weights (S and XS) train for `epochs_initial`
    restart_from_base: bool = True  # every generation fine-tunes the base (the initial L; S, XS
    # fresh), as the paper restarts from its pre-trained model; False warm-starts from the
    # previous generation's model of the same size (quick run: gen2 L collapsed, dev 31 -> 12)
    keep_data: bool = True  # a generation trains on the ranked data of all generations so far
    # (gen2's samples from the confident gen1 L rarely differ, so alone they add little)
    batch_size: int = 8  # many small updates per CPU-minute (copying names needs many steps)
    learning_rate: float = 2e-3
    xs_epochs: int | None = None  # XS distillation epochs (None: `epochs_initial`)
    xs_learning_rate: float | None = None  # (None: `learning_rate`); the quick preset's 3k-param
    # XS parses its steps only with a larger rate for longer (dev parse failures 0.96 -> 0.44)
    label_smoothing: float = 0.0  # > 0 keeps fine-tuned policies from turning deterministic
    eval_runs: int = 10  # the paper's 10 auto-eval runs
    ablations: bool = True  # trajectories 1x/2x/4x, ranker vs perplexity targets, self-checks
    strategy: str = "default"  # default | mirrored | tpu
    mixed_precision: bool = True  # only takes effect on GPU
    jit_compile: bool = True  # XLA KV-cache decoding: ~1 s of compiling per model and batch
    # shape, repaid over a full run's thousands of decode calls (not at demo/quick size)

    def __post_init__(self) -> None:
        for name in ("xs_epochs", "xs_learning_rate", "grow_num_samples"):
            value = getattr(self, name)
            if value is not None and not 0 < value < math.inf:
                raise ConfigError(f"{name} must be positive (or None for the default), "
                                  f"got {value}")
        require_at_least(self, ("train_questions", "dev_questions", "test_questions",
                                "demo_questions", "num_samples", "xs_num_samples",
                                "max_searches", "max_new_tokens", "generations",
                                "trajectories_per_question", "batch_size", "eval_runs", "epochs",
                                "epochs_initial", "people", "cities", "countries", "companies"))
        for name in ("l_spec", "s_spec", "xs_spec"):
            spec = getattr(self, name)
            if len(spec) != 4 or min(spec) < 1:
                raise ConfigError(f"{name} must be 4 positive ints (layers, hidden, heads, "
                                  f"mlp width), got {spec}")
        for name in ("l_spec", "s_spec", "xs_spec"):
            spec = getattr(self, name)
            if spec[1] % spec[2]:
                raise ConfigError(f"{name}: width {spec[1]} is not divisible by its "
                                  f"{spec[2]} heads")
        if not 0 <= self.seed < 2**32:  # NumPy's seed range (set_seed seeds it)
            raise ConfigError(f"seed must be in [0, 2**32 - 1], got {self.seed}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy must be one of {list(STRATEGIES)}, got "
                              f"{self.strategy!r}")
        if not 0 < self.learning_rate < math.inf:
            raise ConfigError(f"learning_rate must be a finite number > 0, got "
                              f"{self.learning_rate}")
        if not 0 <= self.teacher_noise <= 1:
            raise ConfigError(f"teacher_noise must be a probability in [0, 1], got "
                              f"{self.teacher_noise}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        for name in ("temperature", "grow_temperature"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < math.inf:
                raise ConfigError(f"{name} must be a finite number >= 0, got {value}")
        if not self.train_hops or min(self.train_hops) < 1:
            raise ConfigError(f"train_hops must be one or more positive ints, got "
                              f"{self.train_hops}")
        if self.max_new_tokens >= self.sequence_length:
            raise ConfigError(f"max_new_tokens ({self.max_new_tokens}) must be below "
                              f"sequence_length ({self.sequence_length}): prompts need room")
        if self.documents and not self.questions_csv:
            raise ConfigError("documents needs questions_csv (the questions about them)")

    def agent(self, model: str = "L", self_checks: bool = True, grow: bool = False
              ) -> AgentConfig:
        """The agent settings for evaluating `model`, or (`grow=True`) for growing data."""
        samples = self.xs_num_samples if model == "XS" else self.num_samples
        temperature = self.temperature
        if grow:
            samples = samples if self.grow_num_samples is None else self.grow_num_samples
            temperature = self.temperature if self.grow_temperature is None else (
                self.grow_temperature)
        return AgentConfig(num_samples=samples, temperature=temperature,
                           max_searches=self.max_searches, max_new_tokens=self.max_new_tokens,
                           self_checks=self_checks, relevance_sees_past=self.relevance_sees_past)


def run(config: Config, run_dir) -> dict:
    """Grow / improve / fine-tune / distill / evaluate, one resumable stage each."""
    return run_rest_react(config, run_dir)


def headline(results: dict) -> Headline:
    rows = {(r["name"], r["model"]): r for r in results["iterations"]}
    first, last = rows.get(("initial", "L")), rows.get((f"gen{results['generations']}", "L"))
    ours = (f"test acc L {first['test_accuracy_mean']:.1f} -> {last['test_accuracy_mean']:.1f}"
            if first and last else "n/a")
    return Headline("ReST L initial -> last gen (auto-eval %)", ours, "Bamboogle 70.3 -> 76.1")


EXPERIMENT = Experiment(
    name="rest-react", config_cls=Config, run=run,
    headline=headline,
    extendable=("ablations",),  # adds the ablation stages to a finished run, changes no number
    quick={"people": 120, "cities": 40, "countries": 8, "companies": 30,
           "train_questions": 600, "dev_questions": 125, "test_questions": 100,
           "demo_questions": 600, "xs_num_samples": 8, "eval_runs": 5, "epochs_initial": 3,
           "epochs": 3, "sequence_length": 192,
           "l_spec": (2, 72, 4, 288), "s_spec": (2, 24, 2, 96), "xs_spec": (2, 4, 1, 8),
           "xs_epochs": 10, "xs_learning_rate": 1e-2, "ablations": False, "jit_compile": False},
    demo={"people": 40, "cities": 16, "countries": 6, "companies": 12, "train_questions": 24,
          "dev_questions": 8, "test_questions": 8, "demo_questions": 24, "num_samples": 2,
          "xs_num_samples": 2, "eval_runs": 1, "epochs_initial": 2, "epochs": 1,
          "batch_size": 32, "train_hops": (2, 3),
          "generations": 1, "ablations": False, "l_spec": (1, 32, 2, 64),
          "s_spec": (1, 16, 2, 32), "xs_spec": (1, 8, 2, 16), "jit_compile": False},
)
