"""The stages of the `promot` experiment: pretrain the in-context learner, fine-tune one method,
evaluate one method. Each returns JSON and leaves models/prompts in the run directory."""

from __future__ import annotations

import functools
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tfkit.backend import keras
from tfkit.layers import SoftPrompt
from tfkit.promot.data import encode_episode, lm_arrays, sample_episode, task_mixture
from tfkit.promot.evaluation import (
    format_specialization,
    make_predict_fn,
    normalized_score,
    task_predictions,
    task_score,
)
from tfkit.promot.methods import (
    TuningConfig,
    promot,
    promot_multitask,
    tune_jointly,
    tune_model,
    tune_prompt,
)
from tfkit.promot.prompted import PromptedLM
from tfkit.promot.tasks import PRETRAIN_TASKS, Task, make_tasks, make_world
from tfkit.promot.tokenizer import KerasNLPTokenizer, WordTokenizer
from tfkit.promot.training import make_optimizer, train_lm
from tfkit.runs import RunDir

__all__ = ["Setup", "pretrain_lm", "finetune_method", "evaluate_method", "load_preset"]

PROMPTED = ("prompt_tuning", "promot", "joint", "promot_1shot", "multitask_promot")
FINETUNE_LENGTH = 16  # tokens per fine-tuning example and shot (a 0-shot one is <= 12 words)
ANSWER_SAMPLES = 256  # episodes per task whose answers size `Setup.max_new_tokens`


def load_preset(preset_dir: str | os.PathLike) -> tuple[keras.Model, KerasNLPTokenizer]:
    """A keras-nlp GPT-2 backbone and tokenizer from a local preset folder (no download).

    The folder holds what keras-nlp writes for a preset: `config.json` and `model.weights.h5`
    (the backbone), `tokenizer.json` and `assets/tokenizer/` (vocabulary and merges).
    """
    import keras_nlp

    folder = Path(preset_dir)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"no keras-nlp preset in {str(folder)!r}: expected a folder "
                                "with config.json, model.weights.h5, tokenizer.json and "
                                "assets/tokenizer/")
    backbone = keras_nlp.models.GPT2Backbone.from_preset(str(folder))
    tokenizer = keras_nlp.models.GPT2Tokenizer.from_preset(str(folder))
    return backbone, KerasNLPTokenizer(tokenizer)


@dataclass
class Setup:
    """Everything the stages share: the config, the generated tasks and the tokenizer."""

    config: Any
    tasks: dict[str, Task]
    tokenizer: Any
    preset_lm: keras.Model | None = None

    @classmethod
    def create(cls, config: Any) -> Setup:
        world = make_world(config.seed)
        if config.preset_dir:
            lm, tokenizer = load_preset(config.preset_dir)
            return cls(config, make_tasks(world), tokenizer, lm)
        return cls(config, make_tasks(world), WordTokenizer(world.vocabulary()))

    def tuning(self) -> TuningConfig:
        c = self.config
        return TuningConfig(prompt_tokens=c.prompt_tokens, prompt_init=c.prompt_init,
                            prompt_positions=c.prompt_positions,
                            prompt_steps=c.prompt_steps, prompt_optimizer=c.prompt_optimizer,
                            prompt_learning_rate=c.prompt_learning_rate,
                            model_steps=c.model_steps, model_optimizer=c.model_optimizer,
                            model_learning_rate=c.model_learning_rate,
                            model_schedule=c.model_schedule,
                            batch_size=c.finetune_batch_size, seed=c.seed)

    @functools.cached_property
    def max_new_tokens(self) -> int:
        """Tokens to generate per answer: the longest encoded answer over sampled episodes of
        every task (a shorter answer ends at its `|`). The word tokenizer gives 4 (`sequence`
        answers have up to 4 words); a BPE tokenizer splits the pseudo-words into pieces."""
        rng = np.random.default_rng([self.config.seed, 3])
        return max(len(self.tokenizer.encode(f" {y}"))
                   for task in self.tasks.values() for _ in range(ANSWER_SAMPLES)
                   for _, y in sample_episode(task, 0, rng))

    def finetune_arrays(self, target: str, shots: int) -> dict[str, np.ndarray]:
        """Training data of `target` in the `shots`-shot format, loss on the query's answer."""
        rng = np.random.default_rng([self.config.seed, 2, shots, zlib.crc32(target.encode())])
        episodes = [sample_episode(self.tasks[target], shots, rng)
                    for _ in range(self.config.finetune_examples)]
        # FINETUNE_LENGTH per example, or the longest episode's tokens if more (BPE pieces),
        # so no example loses its shots or its answer.
        longest = max(len(encode_episode(self.tokenizer, e)[0]) for e in episodes)
        length = max(FINETUNE_LENGTH * (shots + 1), longest - 1)
        return lm_arrays(episodes, self.tokenizer, length, loss_on="query")


def _meta(setup: Setup, **extra: Any) -> dict:
    return {"kind": "language_model", "tokenizer": setup.tokenizer.describe(),
            "inputs": {"token_ids": "int32 [batch, length], right-padded with pad_id"},
            "outputs": "next-token logits [batch, length, vocabulary]",
            "answer_separator": "|", **extra}


def pretrain_lm(setup: Setup, run_dir: RunDir) -> dict:
    """Pretrains the DecoderLM on the k-shot task mixture (or adopts the preset) and saves it."""
    c = setup.config
    if setup.preset_lm is not None:
        run_dir.save_model(setup.preset_lm, "pretrained", _meta(setup, source=c.preset_dir))
        return {"source": c.preset_dir, "parameters": int(setup.preset_lm.count_params())}
    from tfkit.models import DecoderLM

    rng = np.random.default_rng([c.seed, 1])
    tasks = [setup.tasks[name] for name in PRETRAIN_TASKS]
    with run_dir.timed("generate pretraining episodes"):
        arrays = lm_arrays(task_mixture(tasks, c.pretrain_episodes, (1, 5), rng),
                           setup.tokenizer, c.context_length)
    lm = DecoderLM(vocabulary_size=setup.tokenizer.vocabulary_size,
                   sequence_length=c.context_length + c.prompt_tokens + 2 * setup.max_new_tokens,
                   num_layers=c.num_layers, hidden_dim=c.hidden_dim, num_heads=c.num_heads,
                   intermediate_dim=c.intermediate_dim, name="pretrained_lm")
    optimizer = make_optimizer("adam", c.pretrain_learning_rate, c.pretrain_steps,
                               warmup=min(200, c.pretrain_steps // 10))
    history = train_lm(lm, lm.trainable_variables, arrays, steps=c.pretrain_steps,
                       batch_size=c.pretrain_batch_size, optimizer=optimizer,
                       checkpoint_dir=run_dir.checkpoint_dir("pretrain"), seed=c.seed,
                       log=run_dir.log, log_every=max(c.pretrain_steps // 10, 1))
    run_dir.save_model(lm, "pretrained", _meta(setup, pretraining_tasks=list(PRETRAIN_TASKS)))
    return {"answer_loss": history, "parameters": int(lm.count_params())}


def _prompt_path(run_dir: RunDir, name: str) -> Path:
    return run_dir.path / "prompts" / f"{name}.npz"


def finetune_method(setup: Setup, run_dir: RunDir, method: str, target: str | None) -> dict:
    """Fine-tunes a fresh copy of the pretrained LM with `method` on `target` and saves the LM
    (`models/{target}_{method}.keras`) and prompt (`prompts/{target}_{method}.npz`)."""
    cfg, lm, log = setup.tuning(), run_dir.load_model("pretrained"), run_dir.log
    pad = setup.tokenizer.pad_id
    name = f"{target}_{method}" if target else method
    ckpt = run_dir.checkpoint_dir(name)
    prompts: dict[str, SoftPrompt] = {}
    if method == "multitask_promot":
        data = {t: setup.finetune_arrays(t, 0) for t in setup.config.targets}
        prompts = {f"{t}_{method}": p
                   for t, p in promot_multitask(lm, data, cfg, ckpt, pad, log).items()}
    else:
        data = setup.finetune_arrays(target, 1 if method == "promot_1shot" else 0)
        if method in ("prompt_tuning", "promot"):  # ProMoT's stage 1 is the prompt-tuning run
            stage1 = run_dir.checkpoint_dir(f"{target}_prompt_tuning")
            prompts[name] = tune_prompt(lm, data, cfg, stage1, pad, log)
            if method == "promot":
                tune_model(lm, data, cfg, ckpt, prompts[name], pad, log)
        elif method == "standard_ft":
            tune_model(lm, data, cfg, ckpt, None, pad, log)
        elif method == "joint":
            prompts[name] = tune_jointly(lm, data, cfg, ckpt, pad, log)
        elif method == "promot_1shot":
            prompts[name] = promot(lm, data, cfg, ckpt, pad, log)
        else:
            raise ValueError(f"unknown method {method!r}")
    for key, prompt in prompts.items():
        prompt.save_prompt(_prompt_path(run_dir, key))
    if method != "prompt_tuning":  # prompt tuning leaves the LM unchanged
        run_dir.save_model(lm, name, _meta(setup, method=method, target=target,
                                           prompts=sorted(prompts)))
    return {"prompts": sorted(prompts), "model": None if method == "prompt_tuning" else name}


def _icl(setup: Setup, lm: keras.Model, shots: int) -> dict[str, list]:
    predict = make_predict_fn(PromptedLM(lm, pad_id=setup.tokenizer.pad_id), setup.tokenizer,
                              setup.max_new_tokens)
    return {name: task_predictions(predict, setup.tasks[name], shots,
                                   setup.config.eval_queries, setup.config.seed)
            for name in PRETRAIN_TASKS}


def _summarize(setup: Setup, outputs: dict[str, list], targets: list[str]) -> dict:
    scores = {n: task_score(setup.tasks[n], pairs) for n, pairs in outputs.items()}
    average = float(np.mean([normalized_score(setup.tasks[n], s) for n, s in scores.items()]))
    spec = {t: format_specialization(setup.tasks[t], outputs, setup.tasks) for t in targets}
    return {"scores": {**scores, "normalized_average": average}, "format": spec}


def evaluate_method(setup: Setup, run_dir: RunDir, method: str, target: str | None) -> dict:
    """Target score (prompt kept) and 1-/4-shot scores of the other tasks (prompt removed).

    `method="pretrained"` returns one entry per configured target (its target score is the
    1-shot in-context score); other methods return the entry of `target`.
    """
    targets = list(setup.config.targets) if method == "pretrained" else [target]
    if method in ("pretrained", "prompt_tuning"):  # prompt tuning leaves the LM unchanged
        lm = run_dir.load_model("pretrained")
    else:
        lm = run_dir.load_model(method if method == "multitask_promot" else f"{target}_{method}")
    if method != "prompt_tuning":
        summaries = {k: _summarize(setup, _icl(setup, lm, k), targets) for k in (1, 4)}
    out = {}
    for t in targets:
        if method == "prompt_tuning":  # the same LM: reuse the pretrained in-context scores
            base = run_dir.stage("eval_pretrained", lambda: None)[t]
            entry = {"icl": base["icl"], "format_specialization": base["format_specialization"]}
        else:
            entry = {"icl": {f"{k}shot": s["scores"] for k, s in summaries.items()},
                     "format_specialization": {f"{k}shot": s["format"][t]
                                               for k, s in summaries.items()}}
        prompt = None
        if method in PROMPTED:
            prompt = SoftPrompt.load_prompt(_prompt_path(run_dir, f"{t}_{method}"))
        shots = 1 if method in ("pretrained", "promot_1shot") else 0
        predict = make_predict_fn(PromptedLM(lm, prompt, pad_id=setup.tokenizer.pad_id),
                                  setup.tokenizer, setup.max_new_tokens)
        pairs = task_predictions(predict, setup.tasks[t], shots, setup.config.eval_queries,
                                 setup.config.seed + 1)
        entry["target"] = task_score(setup.tasks[t], pairs)
        entry["target_shots"] = shots
        out[t] = entry
    return out if method == "pretrained" else out[target]
