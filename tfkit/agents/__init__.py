"""ReST meets ReAct: a search agent that improves itself from AI feedback.

- `react`: the agent (prompts as code, `ast` parsing, the batched state machine).
- `lm`, `sampler`: the `LanguageModel` interface; tfkit KV-cache sampling, keras-nlp, callables.
- `search`: BM25 and user search functions, with a query cache.
- `ranker`, `autoeval`: AI feedback and the answer judge (LLM prompts and offline stand-ins).
- `rest`: grow / improve / fine-tune / evaluate.
- `world`: the generated knowledge world and the scripted teacher.
"""

from tfkit.agents.autoeval import LLMJudge, OfflineJudge
from tfkit.agents.lm import CallableLM, KerasNLPLM, LanguageModel, Sample
from tfkit.agents.ranker import LLMRanker, OfflineRater
from tfkit.agents.react import AgentConfig, ReActAgent
from tfkit.agents.sampler import KerasLM, KVCacheSampler
from tfkit.agents.search import BM25Search, CachedSearch, Document, FunctionSearch, Snippet
from tfkit.agents.tokenizer import WordTokenizer

__all__ = ["LLMJudge", "OfflineJudge", "CallableLM", "KerasNLPLM", "LanguageModel", "Sample",
           "LLMRanker", "OfflineRater", "AgentConfig", "ReActAgent", "KerasLM", "KVCacheSampler",
           "BM25Search", "CachedSearch", "Document", "FunctionSearch", "Snippet",
           "WordTokenizer"]
