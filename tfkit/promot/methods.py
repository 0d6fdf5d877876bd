"""ProMoT and its baselines as small stages over `train_lm`.

    prompt tuning     stage 1 only: a soft prompt trained with the LM frozen
    standard FT       the LM fine-tuned on the task, no prompt
    ProMoT            stage 1, then the prompt frozen and the LM fine-tuned with it attached
    joint             prompt and LM trained together from the start
    multi-task ProMoT one prompt per task (stage 1 each), then the LM fine-tuned on all tasks,
                      each with its own frozen prompt

At evaluation the prompt is kept for its own task and removed for every other task
(`PromptedLM(lm, prompt)` vs `lm`). ProMoT + 1-shot is ProMoT on 1-shot-formatted data.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfkit.backend import keras
from tfkit.layers import SoftPrompt
from tfkit.promot.prompted import PromptedLM, token_embeddings
from tfkit.promot.training import make_optimizer, train_lm

__all__ = ["TuningConfig", "copy_lm", "new_prompt", "tune_prompt", "tune_model", "tune_jointly",
           "promot", "promot_multitask"]

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class TuningConfig:
    """Hyper-parameters of both stages (paper: p=100, Adafactor 0.3 then 1e-3).

    Attributes:
        prompt_tokens: soft-prompt length p (100 in the paper; short sequences here).
        prompt_init: "vocabulary" (sampled token embeddings), "uniform" (U(±0.5)) or "text".
        prompt_positions: "unshifted" (the text keeps its positions; the analogue of the paper's
            relative-position T5) or "shifted" (the prompt takes positions 0 … p-1).
        prompt_text_ids: token ids of the natural-language prompt for `prompt_init="text"`.
        prompt_steps: stage-1 steps.
        prompt_optimizer: "adafactor" (parameter-scaled steps, as in the paper) or "adam".
        prompt_learning_rate: 0.3 with Adafactor (paper); use ~3e-3 with Adam.
        model_steps: stage-2 (and standard fine-tuning) steps.
        model_optimizer: "adam" or "adafactor".
        model_learning_rate: 1e-3 as in the paper.
        model_schedule: Adam's learning-rate schedule (either stage): "constant" (T5-style
            fine-tuning to convergence) or "cosine" (decayed to 10 %).
        batch_size: sequences per step.
        seed: batch order and prompt initialization.
    """

    prompt_tokens: int = 20
    prompt_init: str = "vocabulary"
    prompt_positions: str = "unshifted"
    prompt_text_ids: tuple[int, ...] = ()
    prompt_steps: int = 400
    prompt_optimizer: str = "adafactor"
    prompt_learning_rate: float = 0.3
    model_steps: int = 400
    model_optimizer: str = "adam"
    model_learning_rate: float = 1e-3
    model_schedule: str = "constant"
    batch_size: int = 32
    seed: int = 0


def copy_lm(lm: keras.Model) -> keras.Model:
    """A fresh model of the same class and config holding a copy of `lm`'s weights."""
    clone = type(lm).from_config(lm.get_config())
    clone.set_weights(lm.get_weights())
    return clone


def new_prompt(lm: keras.Model, cfg: TuningConfig, name: str = "soft_prompt") -> SoftPrompt:
    """A soft prompt initialized as `cfg.prompt_init` says, from `lm`'s embedding table."""
    prompt = SoftPrompt(cfg.prompt_tokens, positions=cfg.prompt_positions, name=name)
    table = token_embeddings(lm).numpy()
    prompt.build((None, None, table.shape[-1]))
    if cfg.prompt_init == "vocabulary":
        prompt.init_from_vocabulary(table, seed=cfg.seed)
    elif cfg.prompt_init == "text":
        prompt.init_from_text(table, cfg.prompt_text_ids)
    elif cfg.prompt_init != "uniform":
        raise ValueError(f"prompt_init must be vocabulary, uniform or text, not "
                         f"{cfg.prompt_init!r}")
    return prompt


def _train(model, variables, data, steps, optimizer_name, lr, cfg, directory, log, seed_offset):
    optimizer = make_optimizer(optimizer_name, lr, steps, schedule=cfg.model_schedule)
    return train_lm(model, variables, data, steps=steps, batch_size=cfg.batch_size,
                    optimizer=optimizer, checkpoint_dir=directory, seed=cfg.seed + seed_offset,
                    log=log)


def tune_prompt(lm: keras.Model, data: Arrays, cfg: TuningConfig, directory: str | os.PathLike,
                pad_id: int = 0, log: Callable[[str], None] | None = None) -> SoftPrompt:
    """Stage 1 (prompt tuning): trains a new soft prompt on `data` with `lm` frozen."""
    prompt = new_prompt(lm, cfg)
    model = PromptedLM(lm, prompt, pad_id=pad_id)
    _train(model, [prompt.prompt], data, cfg.prompt_steps, cfg.prompt_optimizer,
           cfg.prompt_learning_rate, cfg, directory, log, 1)
    return prompt


def tune_model(lm: keras.Model, data: Arrays, cfg: TuningConfig, directory: str | os.PathLike,
               prompt: SoftPrompt | None = None, pad_id: int = 0,
               log: Callable[[str], None] | None = None) -> keras.Model:
    """Model tuning of every LM weight; with `prompt`, the frozen prompt stays attached
    (ProMoT stage 2), without it this is standard fine-tuning. Returns `lm`, trained in place."""
    model = PromptedLM(lm, prompt, pad_id=pad_id)
    _train(model, lm.trainable_variables, data, cfg.model_steps, cfg.model_optimizer,
           cfg.model_learning_rate, cfg, directory, log, 2)
    return lm


def tune_jointly(lm: keras.Model, data: Arrays, cfg: TuningConfig, directory: str | os.PathLike,
                 pad_id: int = 0, log: Callable[[str], None] | None = None) -> SoftPrompt:
    """Prompt and LM trained together (the paper's joint-tuning baseline); returns the prompt."""
    prompt = new_prompt(lm, cfg)
    model = PromptedLM(lm, prompt, pad_id=pad_id)
    _train(model, [prompt.prompt, *lm.trainable_variables], data, cfg.model_steps,
           cfg.model_optimizer, cfg.model_learning_rate, cfg, directory, log, 3)
    return prompt


def promot(lm: keras.Model, data: Arrays, cfg: TuningConfig, directory: str | os.PathLike,
           pad_id: int = 0, log: Callable[[str], None] | None = None) -> SoftPrompt:
    """ProMoT: stage 1 prompt tuning, stage 2 model tuning with the frozen prompt attached.
    Trains `lm` in place and returns the prompt (keep it on for this task only)."""
    directory = Path(directory)
    prompt = tune_prompt(lm, data, cfg, directory / "stage1_prompt", pad_id, log)
    tune_model(lm, data, cfg, directory / "stage2_model", prompt, pad_id, log)
    return prompt


def promot_multitask(lm: keras.Model, data: Mapping[str, Arrays], cfg: TuningConfig,
                     directory: str | os.PathLike, pad_id: int = 0,
                     log: Callable[[str], None] | None = None) -> dict[str, SoftPrompt]:
    """Multi-task ProMoT: a prompt per task, then the LM tuned on all tasks in turn, each batch
    with its own task's frozen prompt. Returns {task: prompt}."""
    directory = Path(directory)
    prompts = {name: tune_prompt(lm, arrays, cfg, directory / f"stage1_{name}", pad_id, log)
               for name, arrays in data.items()}
    models = {name: PromptedLM(lm, prompts[name], pad_id=pad_id) for name in data}
    steps = cfg.model_steps * len(data)  # the same number of steps per task as single-task
    _train(models, lm.trainable_variables, dict(data), steps, cfg.model_optimizer,
           cfg.model_learning_rate, cfg, directory / "stage2_model", log, 4)
    return prompts
