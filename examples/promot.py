"""Two-stage fine-tuning (ProMoT) of a keras-nlp GPT-2 backbone, with the in-context check.

    uv run python examples/promot.py                 # a tiny GPT2Backbone built from config
    uv run python examples/promot.py PRESET_DIR      # your local keras-nlp GPT-2 preset folder

Stage 1 trains a soft prompt with the backbone frozen; stage 2 fine-tunes the backbone with the
frozen prompt attached. Afterwards the prompt is kept for the fine-tuned task and removed for
every other task, whose in-context (1-shot) scores should stay where they were.
"""

import sys
import tempfile

import numpy as np

from tfkit.backend import set_seed
from tfkit.promot import (
    PRETRAIN_TASKS,
    PromptedLM,
    TuningConfig,
    WordTokenizer,
    encode_episode,
    evaluate_icl,
    lm_arrays,
    load_preset,
    make_predict_fn,
    make_tasks,
    make_world,
    promot,
    sample_episode,
    task_predictions,
    task_score,
)

set_seed(0)  # the same backbone initialisation and training on every run
world = make_world(seed=0)
tasks = make_tasks(world)
if len(sys.argv) > 1:  # a user's preset: keras_nlp GPT2Backbone + GPT2Tokenizer from a folder
    backbone, tokenizer = load_preset(sys.argv[1])
else:
    import keras_nlp

    tokenizer = WordTokenizer(world.vocabulary())
    backbone = keras_nlp.models.GPT2Backbone(
        vocabulary_size=tokenizer.vocabulary_size, num_layers=2, num_heads=2, hidden_dim=32,
        intermediate_dim=64, max_sequence_length=128, dropout=0.0)

# Fine-tuning data: the True/False `entail` task in its 0-shot format, loss on the answer only.
rng = np.random.default_rng(0)
episodes = [sample_episode(tasks["entail"], 0, rng) for _ in range(500)]
longest = max(len(encode_episode(tokenizer, e)[0]) for e in episodes)  # BPE: more pieces
data = lm_arrays(episodes, tokenizer, length=max(32, longest - 1), loss_on="query")

cfg = TuningConfig(prompt_tokens=8, prompt_steps=60, model_steps=60, batch_size=16)
with tempfile.TemporaryDirectory() as checkpoints:
    prompt = promot(backbone, data, cfg, checkpoints, pad_id=tokenizer.pad_id, log=print)

# Tokens to generate per answer: the longest answer of any task (a BPE preset splits the tasks'
# words into several pieces; fewer would cut answers and score them wrong).
max_new = max(len(tokenizer.encode(f" {y}")) for task in tasks.values() for _ in range(64)
              for _, y in sample_episode(task, 0, rng))

# The fine-tuned task: prompt kept.
with_prompt = make_predict_fn(PromptedLM(backbone, prompt, pad_id=tokenizer.pad_id), tokenizer,
                              max_new)
pairs = task_predictions(with_prompt, tasks["entail"], shots=0, num_queries=64, seed=1)
print(f"entail accuracy (prompt kept): {task_score(tasks['entail'], pairs):.1f}%")
if len(sys.argv) == 1:
    print("(a backbone built from config was never pretrained: expect chance on entail and ~0 "
          "in context below; a pretrained preset folder gives real scores)")

# Every other task: prompt removed, 1-shot in context.
without_prompt = make_predict_fn(PromptedLM(backbone, pad_id=tokenizer.pad_id), tokenizer,
                                 max_new)
others = {name: tasks[name] for name in PRETRAIN_TASKS}
for name, value in evaluate_icl(without_prompt, others, tasks["entail"], shots=1,
                                num_queries=32):
    print(f"  1-shot {name}: {value:.1f}")

prompt_file = f"{tempfile.mkdtemp()}/entail_prompt.npz"
prompt.save_prompt(prompt_file)  # a few KB, separate from the model
print(f"saved the soft prompt to {prompt_file}")
