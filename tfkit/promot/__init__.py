"""ProMoT (ICLR'24): prompt tuning, then model tuning with the prompt attached, so fine-tuning
specializes less to the task's format and in-context learning on other tasks survives.

    from tfkit.promot import PromptedLM, TuningConfig, promot, evaluate_icl, make_predict_fn

See docs/promot.md.
"""

from tfkit.promot.data import encode_episode, lm_arrays, prompt_text, sample_episode, task_mixture
from tfkit.promot.evaluation import (
    bleu,
    evaluate_icl,
    format_specialization,
    make_predict_fn,
    normalized_score,
    own_format_rate,
    task_predictions,
    task_score,
)
from tfkit.promot.methods import (
    TuningConfig,
    copy_lm,
    new_prompt,
    promot,
    promot_multitask,
    tune_jointly,
    tune_model,
    tune_prompt,
)
from tfkit.promot.pipeline import load_preset
from tfkit.promot.prompted import PromptedLM, UnsupportedModelError, token_embeddings
from tfkit.promot.tasks import PRETRAIN_TASKS, TARGET_TASKS, Task, World, make_tasks, make_world
from tfkit.promot.tokenizer import KerasNLPTokenizer, Tokenizer, WordTokenizer
from tfkit.promot.training import answer_loss, make_optimizer, train_lm

__all__ = ["encode_episode", "lm_arrays", "prompt_text", "sample_episode", "task_mixture",
           "bleu", "evaluate_icl", "format_specialization", "make_predict_fn",
           "normalized_score", "own_format_rate", "task_predictions", "task_score",
           "TuningConfig", "copy_lm",
           "new_prompt", "promot", "promot_multitask", "tune_jointly", "tune_model",
           "tune_prompt", "PromptedLM", "UnsupportedModelError", "token_embeddings",
           "PRETRAIN_TASKS", "TARGET_TASKS", "Task", "World", "make_tasks", "make_world",
           "KerasNLPTokenizer", "Tokenizer", "WordTokenizer", "answer_loss", "make_optimizer",
           "train_lm", "load_preset"]
