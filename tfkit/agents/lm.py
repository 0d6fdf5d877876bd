"""The `LanguageModel` interface the agent, ranker and judge use, and adapters.

A LanguageModel has
    generate(prompts, num_samples, temperature, max_new_tokens, stop, seed) -> [[Sample]]
    score(prompts, continuations) -> [log p(continuation | prompt)]
Implementations: `tfkit.agents.sampler.KerasLM` (tfkit's DecoderLM with a batched KV-cache
sampler), `KerasNLPLM` (any keras-nlp `CausalLM`, e.g. one loaded from a local preset folder)
and `CallableLM` (a user's remote model behind a Python function).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from tfkit.errors import TfkitError

__all__ = ["Sample", "LanguageModel", "CallableLM", "KerasNLPLM", "truncate_at_stop",
           "first_text"]


@dataclass(frozen=True)
class Sample:
    """One sampled continuation, with its log-probability under the model (T = 1)."""

    text: str
    logprob: float = 0.0
    num_tokens: int = 1

    @property
    def perplexity(self) -> float:
        if math.isnan(self.logprob):  # never preferred, whatever the order of the samples
            return math.inf
        try:
            return math.exp(-self.logprob / max(1, self.num_tokens))
        except OverflowError:  # e.g. an API's -9999.0 for an unlikely token: never preferred
            return math.inf


@runtime_checkable
class LanguageModel(Protocol):
    def generate(self, prompts: Sequence[str], num_samples: int = 1, temperature: float = 0.5,
                 max_new_tokens: int = 64, stop: Sequence[str] = (), seed: int | None = None
                 ) -> list[list[Sample]]: ...

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[float]: ...


def first_text(rows: Sequence[Sequence[Sample]]) -> str:
    """The first sample's text of a one-prompt `generate` reply; "" when it has no sample
    (the interface allows none: a failed step)."""
    return rows[0][0].text if rows and rows[0] else ""


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    cut = min((text.find(s) for s in stop if s and s in text), default=-1)
    return text if cut < 0 else text[:cut]


class CallableLM:
    """A user's model (e.g. a remote API) as a LanguageModel.

    Args:
        generate_fn: `fn(prompt, temperature, max_new_tokens, stop) -> str` or `(str, logprob)`.
            Called once per requested sample. The text is cut at the first stop sequence, as
            an API that honours `stop` would cut it (so a model that ignores `stop` is fine);
            anything but a str (bytes are decoded) raises a TypeError.
        score_fn: optional `fn(prompt, continuation) -> logprob`; without it `score` and
            perplexities are unavailable (samples get logprob 0 and the first sample continues).
        strip_leading_whitespace: drop whitespace before the text (then cut it at `stop`): for
            a model that starts its replies with a newline while `stop` holds "\n", which would
            otherwise cut every reply to "". Off by default: like the Keras adapters, and like
            an API that applies `stop` itself.

    Example:
        >>> lm = CallableLM(lambda p, t, n, s: 'Terminate(thoughts="done")')
        >>> lm.generate(["decide(...) >>>"], num_samples=2)[0][1].text
        'Terminate(thoughts="done")'
    """

    def __init__(self, generate_fn: Callable, score_fn: Callable | None = None,
                 strip_leading_whitespace: bool = False):
        self.generate_fn = generate_fn
        self.score_fn = score_fn
        self.strip_leading_whitespace = strip_leading_whitespace

    def generate(self, prompts: Sequence[str], num_samples: int = 1, temperature: float = 0.5,
                 max_new_tokens: int = 64, stop: Sequence[str] = (), seed: int | None = None
                 ) -> list[list[Sample]]:
        out = []
        for p in prompts:
            row = []
            for _ in range(num_samples):
                reply = self.generate_fn(p, temperature, max_new_tokens, tuple(stop))
                text, logprob = _reply(reply)
                if self.strip_leading_whitespace:
                    text = text.lstrip()
                text = truncate_at_stop(text, stop)
                if logprob is None and self.score_fn is not None:
                    logprob = self.score_fn(p, text)
                row.append(Sample(text, _logprob(logprob), max(1, len(text.split()))))
            out.append(row)
        return out

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[float]:
        if self.score_fn is None:
            raise NotImplementedError("CallableLM was built without score_fn")
        return [float(self.score_fn(p, c)) for p, c in zip(prompts, continuations, strict=True)]


def _reply(reply) -> tuple[str, object]:
    """(text, logprob or None) from a `CallableLM.generate_fn` reply, or a clear TypeError."""
    text, logprob = reply if isinstance(reply, tuple) and len(reply) == 2 else (reply, None)
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not isinstance(text, str):
        raise TypeError("CallableLM: generate_fn must return the continuation as a str (or "
                        f"(str, logprob)), got {type(reply).__name__}: {reply!r:.80}")
    return text, logprob


def _logprob(value) -> float:
    if value is None:
        return 0.0
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"CallableLM: a log-probability must be a number, got "
                        f"{type(value).__name__}: {value!r:.80}") from None


def _as_str(text) -> str:
    text = text.numpy() if hasattr(text, "numpy") else text
    # a cut token sequence (a kept prompt end, a length cap) may split a multi-byte character
    return text.decode("utf-8", errors="ignore") if isinstance(text, bytes) else str(text)


class KerasNLPLM:
    """Any keras-nlp `CausalLM` (with its preprocessor) as a LanguageModel.

    Generation uses the model's own `generate` with a `RandomSampler(temperature)` (a
    `GreedySampler` at temperature <= 0, as `LLMJudge` and `LLMRanker` ask for); scores come
    from the backbone's logits after the start token the preprocessor puts before a prompt
    (GPT-2's <|endoftext|>), as generation conditions on it, so an empty prompt can be scored
    too. Load a local preset with
    `keras_nlp.models.GPT2CausalLM.from_preset("/path/to/preset_dir")`.

    A prompt longer than the backbone's `max_sequence_length` leaves room for
    `max_new_tokens` by keeping its end (the step's call), as `KerasLM` does.

    Args:
        causal_lm: a keras-nlp CausalLM whose `preprocessor` is set.
    """

    def __init__(self, causal_lm: Any):
        self.causal_lm = causal_lm
        self._start: list[int] | None = None  # the ids generate puts before a prompt
        self._greedy = False  # compiled with a GreedySampler (kept: compiling drops generate's
        # traced function; a RandomSampler is rebuilt per call so a seed repeats its samples)

    def _compile_sampler(self, temperature: float, seed: int | None) -> None:
        import keras_nlp

        if temperature <= 0:
            if not self._greedy:
                self.causal_lm.compile(sampler=keras_nlp.samplers.GreedySampler())
                self._greedy = True
            return
        self.causal_lm.compile(sampler=keras_nlp.samplers.RandomSampler(temperature=temperature,
                                                                        seed=seed))
        self._greedy = False

    def generate(self, prompts: Sequence[str], num_samples: int = 1, temperature: float = 0.5,
                 max_new_tokens: int = 64, stop: Sequence[str] = (), seed: int | None = None
                 ) -> list[list[Sample]]:
        if not prompts:
            return []
        lm = self.causal_lm
        tokenizer = lm.preprocessor.tokenizer
        self._compile_sampler(temperature, seed)
        limit = self._limit()
        prompt_ids = [self._ids(p) for p in prompts]  # each prompt tokenized once
        if limit is not None:  # keep each prompt's end (the call) within the positions
            room = limit - max_new_tokens - 2  # (start token, one spare)
            if room < 1:
                raise TfkitError(f"max_new_tokens={max_new_tokens} leaves no room for a "
                                 f"prompt in the model's max_sequence_length={limit}")
            kept = [self._keep_end_ids(p, ids, room) for p, ids in zip(prompts, prompt_ids,
                                                                       strict=True)]
            prompts, prompt_ids = [p for p, _ in kept], [ids for _, ids in kept]
        flat = [p for p in prompts for _ in range(num_samples)]
        flat_ids = [ids for ids in prompt_ids for _ in range(num_samples)]
        max_length = max(len(ids) for ids in prompt_ids) + max_new_tokens + 2
        max_length = max_length if limit is None else min(max_length, limit)
        texts = lm.generate(flat, max_length=max_length)
        texts = [_as_str(t) for t in list(texts)]
        conts = []
        for t, p in zip(texts, flat, strict=True):
            ids = tokenizer(t[len(p):])  # rows share one max_length: cap each at its budget
            if len(ids) > max_new_tokens:
                t = p + _as_str(tokenizer.detokenize(ids[:max_new_tokens]))
            conts.append(truncate_at_stop(t[len(p):], stop))
        cont_ids = [self._ids(c) if c else [] for c in conts]
        samples = [Sample(c, self._score_ids(p_ids, c_ids), max(1, len(c_ids)))
                   for c, p_ids, c_ids in zip(conts, flat_ids, cont_ids, strict=True)]
        return [samples[i * num_samples:(i + 1) * num_samples] for i in range(len(prompts))]

    def _ids(self, text: str) -> list[int]:
        return [int(i) for i in self.causal_lm.preprocessor.tokenizer(text).numpy()]

    def _limit(self) -> int | None:
        """The backbone's number of positions (None if it does not say)."""
        return getattr(self.causal_lm.backbone, "max_sequence_length", None)

    def _start_ids(self) -> list[int]:
        """The ids the preprocessor puts before a prompt when generating (GPT-2's
        <|endoftext|>; keras-nlp adds it even with `add_start_token=False`), which scoring
        conditions on too; [] if it adds none. Read off `generate_preprocess` once."""
        if self._start is None:
            packed = self.causal_lm.preprocessor.generate_preprocess([""], sequence_length=4)
            ids, mask = packed["token_ids"].numpy()[0], packed["padding_mask"].numpy()[0]
            self._start = [int(i) for i in ids[mask.astype(bool)]]
        return self._start

    def _keep_end_ids(self, prompt: str, ids: list[int], room: int) -> tuple[str, list[int]]:
        """(`prompt` cut to its last `room` tokens when longer, its token ids) from its `ids`."""
        if len(ids) <= room:
            return prompt, ids
        tokenizer = self.causal_lm.preprocessor.tokenizer
        kept = _as_str(tokenizer.detokenize(ids[len(ids) - room:]))
        return kept, self._ids(kept)  # the cut text as generate reads it

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[float]:
        """log p(continuation | prompt), the prompt after the start token as in `generate`."""
        return [self._score_ids(self._ids(p), self._ids(c) if c else [])
                for p, c in zip(prompts, continuations, strict=True)]

    def _score_ids(self, p_ids: list[int], c_ids: list[int]) -> float:
        from tfkit.backend import tf

        if not c_ids:
            return 0.0
        start, limit = self._start_ids(), self._limit()
        if limit is not None and len(start) + len(p_ids) + len(c_ids) > limit:
            if len(c_ids) + max(len(start), 1) > limit:  # (at least one token before it)
                raise TfkitError(f"a continuation of {len(c_ids)} tokens does not fit "
                                 f"the model's max_sequence_length={limit}")
            p_ids = p_ids[len(start) + len(p_ids) + len(c_ids) - limit:]  # the prompt's end
        context = start + list(p_ids)
        if not context:
            raise TfkitError("an empty prompt cannot be scored: the model's preprocessor adds "
                             "no start token to condition on")
        ids = tf.constant([context + list(c_ids)], tf.int32)
        logits = self.causal_lm({"token_ids": ids, "padding_mask": tf.ones_like(ids)})
        logp = tf.nn.log_softmax(tf.cast(logits[0, len(context) - 1:-1], tf.float32))
        return float(tf.reduce_sum(tf.gather(logp, c_ids, batch_dims=1)))
