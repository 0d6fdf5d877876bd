"""One ReST generation with your own LLM and search function.

Plug in:
  - `my_llm(prompt, temperature, max_new_tokens, stop) -> str` (e.g. a call to your model
    server); optionally `my_logprob(prompt, continuation) -> float` for perplexity choices;
  - `my_search(query) -> list[str]` (e.g. your search API or a local index).

This script runs it on a tiny generated world with stand-ins for both (the scripted teacher as
the "LLM", BM25 as the search engine), ranks every step with the offline rater (or, with a
real model, `LLMRanker(my_llm_as_lm)`), distils the ranked targets into a small Keras model,
and auto-evaluates both.

    uv run python examples/rest_react.py
"""

from __future__ import annotations

import tempfile

from tfkit.agents import (
    AgentConfig,
    BM25Search,
    CallableLM,
    FunctionSearch,
    KerasLM,
    OfflineRater,
    WordTokenizer,
)
from tfkit.agents.rest import ModelSpec, evaluate_policy, finetune, run_generation
from tfkit.agents.world import ScriptedTeacher, build_world
from tfkit.backend import set_seed

set_seed(0)  # the same student initialisation and training on every run
world = build_world(0, people=40, cities=16, countries=6, companies=12, train=40, dev=10,
                    test=10)
bm25 = BM25Search(world.documents)
teacher = ScriptedTeacher(noise=0.3)


def my_llm(prompt: str, temperature: float, max_new_tokens: int, stop: tuple) -> str:
    """Replace with your model: return the continuation of `prompt`."""
    return teacher.generate([prompt], temperature=temperature)[0][0].text


def my_search(query: str) -> list[str]:
    """Replace with your search engine: return result snippets, best first."""
    return [s.text for s in bm25(query, 3)]


llm = CallableLM(my_llm)  # add score_fn=my_logprob to pick the lowest-perplexity sample
search = FunctionSearch(my_search)
config = AgentConfig(num_samples=4, temperature=0.5)

# grow + improve: roll out, rank every step's samples, keep the best as targets
trajectories, examples = run_generation(llm, search, world.train, agent_config=config,
                                        ranker=OfflineRater())
print(f"{len(trajectories)} trajectories -> {len(examples)} fine-tuning examples")
print("one step:", examples[0]["prompt"][:80], "...", examples[0]["output"])

# fine-tune / distil a small Keras policy on the targets (loss on output tokens only)
tokenizer = WordTokenizer.fit([d.text for d in world.documents]
                              + [e["prompt"] + " " + e["output"] for e in examples])
with tempfile.TemporaryDirectory() as ckpt:
    model, _ = finetune(examples, tokenizer, ModelSpec(2, 48, 4, 192), sequence_length=224,
                        epochs=10, directory=ckpt)  # 3 epochs: it does not even search yet
student = KerasLM(model, tokenizer)

for name, policy in [("your LLM", llm), ("distilled student", student)]:
    r = evaluate_policy(policy, search, world.test, agent_config=config, runs=1)
    print(f"{name}: test accuracy {r['accuracy_mean']:.1f}%, "
          f"{r['searches_per_question_mean']:.2f} searches/question, "
          f"{r['parse_failure_rate_mean']:.0%} of its outputs unparsable")
print("(40 questions are far too few for a student trained from scratch: it is still learning "
      "the step format and cannot yet copy new entity names into its queries; see "
      "docs/rest_react.md, 'How many demonstrations')")
