"""Batched KV-cache sampling for tfkit's `DecoderLM`, and `KerasLM`, its LanguageModel.

The decode loop is one `tf.function` (XLA-compiled by default): a prefill pass runs the blocks
over the left-padded prompts and keeps each block's keys and values in preallocated buffers
([batch, heads, prompt + max_new_tokens, head_dim]), then a `tf.while_loop` samples one token
per step for every row until all rows emitted `<eos>` or `max_new_tokens`; the buffers and the
output are updated in place (`dynamic_update_slice`). Sampling draws one uniform number per row
and step (`inverse_cdf_sample`; the numbers for all steps are drawn before the loop, for the
real rows only, so the rows `KerasLM` adds to reach a compiled shape change no sample), because
XLA's per-vocabulary-entry random numbers cost more than the model on CPU. Positions are
counted per row from the first real token, so a left-padded prompt sees the same positions as
in (right-padded) training. XLA compiles once per (batch, prompt width, max_new_tokens), so
`KerasLM` pads batches to a power of two rows and prompts to the model's full room.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence

import numpy as np

from tfkit.agents.lm import Sample, truncate_at_stop
from tfkit.agents.sampling import inverse_cdf_sample
from tfkit.agents.tokenizer import WordTokenizer
from tfkit.backend import dynamic_update_slice, keras, tf
from tfkit.errors import TfkitError

__all__ = ["KVCacheSampler", "KerasLM"]


class KVCacheSampler:
    """Samples continuations of left-padded prompt ids with a `DecoderLM`'s block caches.

    Args:
        model: a `tfkit.models.DecoderLM` (or any model with its layer names).
        eos_id: the token that ends a continuation.
        jit_compile: compile the decode loop with XLA (several times faster on CPU for small
            models; each new input shape compiles once).

    Example:
        >>> from tfkit.models import DecoderLM
        >>> lm = DecoderLM(vocabulary_size=20, sequence_length=32, num_layers=1, hidden_dim=16,
        ...                num_heads=2, intermediate_dim=32)
        >>> sampler = KVCacheSampler(lm, eos_id=2, jit_compile=False)
        >>> prompt_ids = np.array([[5, 6, 7], [0, 8, 9]])  # a batch, left-padded with 0
        >>> tokens, logprob, n = sampler(prompt_ids, max_new_tokens=4, temperature=0.5)
        >>> tokens.shape, logprob.shape, n.shape  # new tokens, their log-probability, count
        (TensorShape([2, 4]), TensorShape([2]), TensorShape([2]))
    """

    def __init__(self, model: keras.Model, eos_id: int, jit_compile: bool = True):
        self.model = model
        self.eos_id = int(eos_id)
        self.jit_compile = jit_compile
        try:
            self.blocks = [model.get_layer(f"block_{i}") for i in range(model.num_layers)]
            self.embed = model.get_layer("token_embedding")
            self.positions = model.get_layer("position_embedding")
            self.norm = model.get_layer("final_norm")
            self.head = model.get_layer("lm_head")
        except (AttributeError, ValueError) as e:
            raise TypeError(f"KVCacheSampler needs a tfkit.models.DecoderLM (num_layers, "
                            f"block_i, token_embedding, position_embedding, final_norm, "
                            f"lm_head), got {type(model).__name__}: {e}; wrap other models "
                            f"in CallableLM or KerasNLPLM") from None
        self.loop = tf.function(self.decode_with_uniforms, jit_compile=jit_compile,
                                input_signature=[tf.TensorSpec([None, None], tf.int32),
                                                 tf.TensorSpec([None, None], tf.float32),
                                                 tf.TensorSpec([], tf.float32)])
        self.compiled = tf.function(self.decode, input_signature=[
            tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([], tf.int32),
            tf.TensorSpec([], tf.float32), tf.TensorSpec([2], tf.int32)])

    def _embed(self, ids: tf.Tensor, pos: tf.Tensor) -> tf.Tensor:
        x = self.embed(ids)
        table = tf.gather(self.positions.embeddings, pos)
        return x + tf.cast(table, x.dtype)

    def _logits(self, x: tf.Tensor) -> tf.Tensor:
        return tf.cast(self.head(self.norm(x[:, -1:]))[:, 0], tf.float32)  # last position only

    def _prefill(self, x, real, max_new_tokens):
        """Runs the blocks over the prompt; returns (x, keys, values) with room for new tokens."""
        batch, plen = tf.shape(x)[0], tf.shape(x)[1]
        room = [[0, 0], [0, 0], [0, max_new_tokens], [0, 0]]
        keys, values = [], []
        for block in self.blocks:
            cache = tf.zeros([batch, 2, block.num_heads, plen, block.head_dim], x.dtype)
            x, cache = block(x, padding_mask=real, cache=cache, cache_index=0)
            keys.append(tf.pad(cache[:, 0], room))
            values.append(tf.pad(cache[:, 1], room))
        return x, keys, values

    @staticmethod
    def _block_step(block, x, keys, values, visible, index):
        """`block(x)` for one new position `index`, reading and writing its key/value buffers.

        The same computation as `TransformerBlock.call` with a cache (same ops in the same
        order, so the same numbers), on separate key and value buffers that need no stacking.
        """
        qkv = block.query_key_value(block.attention_norm(x))
        batch, heads, dim = tf.shape(x)[0], block.num_heads, block.head_dim
        q, k, v = (tf.transpose(tf.reshape(t, [batch, 1, heads, dim]), [0, 2, 1, 3])
                   for t in tf.split(qkv, 3, axis=-1))  # [B, heads, 1, dim]
        zero = tf.zeros([], tf.int32)
        start = tf.stack([zero, zero, index, zero])
        keys = dynamic_update_slice(keys, k, start)
        values = dynamic_update_slice(values, v, start)
        scores = tf.matmul(q, keys, transpose_b=True) / math.sqrt(dim)
        masked = max(-1e9, scores.dtype.min)  # as TransformerBlock: -1e9 is -inf in float16
        scores = tf.where(visible, scores, tf.cast(masked, scores.dtype))
        out = tf.transpose(tf.matmul(tf.nn.softmax(scores, axis=-1), values), [0, 2, 1, 3])
        out = tf.reshape(out, [batch, 1, heads * dim])
        x = x + block.attention_output(out)
        x = x + block.feed_forward(block.feed_forward_norm(x))
        return x, keys, values

    def decode(self, prompt_ids: tf.Tensor, max_new_tokens: tf.Tensor, temperature: tf.Tensor,
               seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(tokens [B, max_new], logprob [B], num_tokens [B]) for left-padded `prompt_ids`."""
        uniforms = self.uniforms(max_new_tokens, tf.shape(prompt_ids)[0], seed)
        return self.loop(prompt_ids, uniforms, temperature)

    @staticmethod
    def uniforms(max_new_tokens, rows, seed) -> tf.Tensor:
        """The uniform numbers [max_new_tokens, rows] of `rows` rows' inverse-CDF draws.

        Drawn outside XLA: XLA's Philox derives its key from a run-time seed differently, and
        the samples should not depend on jit_compile.
        """
        return tf.random.stateless_uniform([max_new_tokens, rows], seed=seed, alg="philox")

    def decode_with_uniforms(self, prompt_ids: tf.Tensor, uniforms: tf.Tensor,
                             temperature: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """`decode` given the uniform numbers [max_new_tokens, B] of its inverse-CDF draws."""
        max_new_tokens = tf.shape(uniforms)[0]
        batch, plen = tf.shape(prompt_ids)[0], tf.shape(prompt_ids)[1]
        real = tf.not_equal(prompt_ids, 0)
        pos = tf.maximum(tf.cumsum(tf.cast(real, tf.int32), axis=1) - 1, 0)
        x, keys, values = self._prefill(self._embed(prompt_ids, pos), real, max_new_tokens)
        logits = self._logits(x)
        key_ok = tf.concat([real, tf.ones([batch, max_new_tokens], tf.bool)], axis=1)
        key_index = tf.range(plen + max_new_tokens)
        limit = self.positions.sequence_length - 1

        def body(i, logits, keys, values, out, logprob, count, done, next_pos):
            scaled = logits / tf.maximum(temperature, 1e-6)
            sampled = inverse_cdf_sample(scaled, uniforms[i])
            greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
            token = tf.where(temperature > 0, sampled, greedy)
            token = tf.where(done, tf.zeros_like(token), token)
            lp = tf.gather(tf.nn.log_softmax(logits), token, batch_dims=1)
            logprob += tf.where(done, 0.0, lp)
            count += tf.where(done, 0, 1)
            done = tf.logical_or(done, tf.equal(token, self.eos_id))
            out = dynamic_update_slice(out, token[:, None], tf.stack([0, i]))
            x = self._embed(token[:, None], tf.minimum(next_pos, limit)[:, None])
            visible = tf.logical_and(key_ok, key_index <= plen + i)[:, None, None, :]
            new_keys, new_values = [], []
            for block, k, v in zip(self.blocks, keys, values, strict=True):
                x, k, v = self._block_step(block, x, k, v, visible, plen + i)
                new_keys.append(k)
                new_values.append(v)
            return (i + 1, self._logits(x), new_keys, new_values, out, logprob, count, done,
                    next_pos + 1)

        def cond(i, logits, keys, values, out, logprob, count, done, next_pos):
            return tf.logical_and(i < max_new_tokens, tf.logical_not(tf.reduce_all(done)))

        init = (tf.constant(0), logits, keys, values, tf.zeros([batch, max_new_tokens], tf.int32),
                tf.zeros([batch]), tf.zeros([batch], tf.int32), tf.zeros([batch], tf.bool),
                pos[:, -1] + 1)
        _, _, _, _, tokens, logprob, count, _, _ = tf.while_loop(cond, body, init)
        return tokens, logprob, count  # tokens after a row's <eos> (or the last step) are 0

    def __call__(self, prompt_ids, max_new_tokens: int, temperature: float, seed: int = 0):
        return self.compiled(tf.constant(prompt_ids, tf.int32), tf.constant(max_new_tokens),
                             tf.constant(temperature, tf.float32), _seed(seed))


def _check_prompts(encoded: Sequence[list[int]], prompts: Sequence[str], first: int = 0
                   ) -> None:
    """A clear error for a prompt with no tokens: a WordTokenizer adds no start token, so
    there is nothing to condition the first new token on."""
    for i, ids in enumerate(encoded):
        if not ids:
            raise TfkitError(f"KerasLM: prompt {first + i} ({prompts[i]!r:.40}) is an empty "
                             "prompt (no tokens); its tokenizer adds no start token to "
                             "condition on")


def _seed(seed: int) -> tf.Tensor:
    return tf.constant([seed % (2**31 - 1), 0], tf.int32)  # stateless seeds are int32


class KerasLM:
    """A `DecoderLM` + `WordTokenizer` as a LanguageModel (batched KV-cache generation).

    Args:
        model: the DecoderLM.
        tokenizer: its WordTokenizer.
        batch_size: rows per compiled decode call (prompts x samples).
        strategy: optional `tf.distribute.Strategy`; with several replicas each decode batch is
            split across them (the model must have been built under `strategy.scope()`); a
            row's uniform numbers do not depend on the split, so neither does its sample.
        jit_compile: decode with XLA. Batches are padded to a power of two rows and prompts to
            the model's full room (`sequence_length - max_new_tokens`), so only a few shapes
            ever compile (each compile costs about a second on CPU).
    """

    def __init__(self, model: keras.Model, tokenizer: WordTokenizer, batch_size: int = 256,
                 strategy: tf.distribute.Strategy | None = None, jit_compile: bool = True):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.strategy = strategy
        self.jit_compile = jit_compile
        self.sampler = KVCacheSampler(model, tokenizer.eos_id, jit_compile=jit_compile)

    def _encode(self, prompt: str, room: int) -> list[int]:
        ids = self.tokenizer.encode(prompt)
        return ids[len(ids) - room:] if len(ids) > room else ids  # keep the end (the call)

    def _decode_batch(self, rows: list[list[int]], max_new: int, temperature: float, seed: int):
        real_rows, width = len(rows), max(len(r) for r in rows)
        strategy = self.strategy
        replicas = strategy.num_replicas_in_sync if strategy is not None else 1
        filler = [self.tokenizer.eos_id]  # rows added only to reach a compiled shape
        if self.jit_compile:
            width = max(width, self.model.sequence_length - max_new)
            rows = rows + [filler] * ((1 << (len(rows) - 1).bit_length()) - len(rows))
        if replicas > 1:
            rows = rows + [filler] * (-len(rows) % replicas)
        ids = np.zeros([len(rows), width], np.int32)
        for j, r in enumerate(rows):
            ids[j, width - len(r):] = r
        # Draws for the real rows only, so a row's sample depends neither on the filler rows
        # (jit_compile) nor on how the batch is split across replicas.
        uniforms = self.sampler.uniforms(max_new, real_rows, _seed(seed)).numpy()
        uniforms = np.pad(uniforms, [(0, 0), (0, len(rows) - real_rows)], constant_values=0.5)
        temperature = tf.constant(temperature, tf.float32)
        if replicas == 1:
            return [t.numpy() for t in self.sampler.loop(ids, uniforms, temperature)]
        ids_shards, uniform_shards = np.split(ids, replicas), np.split(uniforms, replicas, axis=1)
        values = strategy.experimental_distribute_values_from_function(
            lambda ctx: (tf.constant(ids_shards[ctx.replica_id_in_sync_group]),
                         tf.constant(uniform_shards[ctx.replica_id_in_sync_group])))
        # A plain function: strategy.run would bind the replicas' values to `loop`'s signature.
        out = strategy.run(lambda shard: self.sampler.loop(*shard, temperature), args=(values,))
        return [np.concatenate([t.numpy() for t in strategy.experimental_local_results(o)])
                for o in out]

    def generate(self, prompts: Sequence[str], num_samples: int = 1, temperature: float = 0.5,
                 max_new_tokens: int = 64, stop: Sequence[str] = (), seed: int | None = None
                 ) -> list[list[Sample]]:
        room = self.model.sequence_length - max_new_tokens
        if room < 1:
            raise TfkitError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in "
                             f"the model's sequence_length={self.model.sequence_length}")
        encoded = [self._encode(p, room) for p in prompts]
        _check_prompts(encoded, prompts)
        if seed is None:  # fresh draws per call; a given seed repeats its samples exactly
            seed = secrets.randbelow(2**31 - 1)
        rows = [(i, ids) for i, ids in enumerate(encoded) for _ in range(num_samples)]
        order = sorted(range(len(rows)), key=lambda j: len(rows[j][1]))  # similar lengths
        results: list[Sample | None] = [None] * len(rows)
        cut: list[tuple[int, list[int]]] = []  # (row, its tokens kept) where a stop cut it
        for b, start in enumerate(range(0, len(order), self.batch_size)):
            chunk = order[start:start + self.batch_size]
            tokens, logprob, count = self._decode_batch(
                [rows[j][1] for j in chunk], max_new_tokens, temperature, seed * 7919 + b)
            for k, j in enumerate(chunk):
                full = self.tokenizer.decode(tokens[k])
                text = truncate_at_stop(full, stop)
                results[j] = Sample(text, float(logprob[k]), int(max(1, count[k])))
                if text != full:
                    cut.append((j, self._kept(tokens[k], len(text))))
        for start in range(0, len(cut), self.batch_size):  # score exactly the text returned
            part = cut[start:start + self.batch_size]
            logprobs = self._sum_logprobs([rows[j][1] + kept for j, kept in part],
                                          [(len(rows[j][1]), len(kept)) for j, kept in part])
            for (j, kept), lp in zip(part, logprobs, strict=True):
                results[j] = Sample(results[j].text, lp, max(1, len(kept)))
        return [results[i * num_samples:(i + 1) * num_samples] for i in range(len(prompts))]

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[float]:
        """Sum of log p(continuation tokens and <eos> | prompt), right-padded batches."""
        out = []
        for start in range(0, len(prompts), self.batch_size):
            pairs = list(zip(prompts[start:start + self.batch_size],
                             continuations[start:start + self.batch_size], strict=True))
            seqs, spans = [], []
            for k, (p, c) in enumerate(pairs):
                c_ids = self.tokenizer.encode(c) + [self.tokenizer.eos_id]
                room = self.model.sequence_length - len(c_ids)
                if room < 1:
                    raise TfkitError(f"a continuation of {len(c_ids)} tokens (with <eos>) does "
                                     f"not fit sequence_length={self.model.sequence_length}")
                p_ids = self._encode(p, room)
                _check_prompts([p_ids], [p], start + k)
                seqs.append(p_ids + c_ids)
                spans.append((len(p_ids), len(c_ids)))
            out.extend(self._sum_logprobs(seqs, spans))
        return out

    def _kept(self, tokens: Sequence[int], length: int) -> list[int]:
        """The leading `tokens` (before <eos>) whose decoded text fits in `length` characters:
        those a stop cut at that character keeps whole."""
        kept: list[int] = []
        for t in tokens:
            if int(t) == self.tokenizer.eos_id or len(
                    self.tokenizer.decode(kept + [int(t)])) > length:
                break
            kept.append(int(t))
        return kept

    def _sum_logprobs(self, seqs: Sequence[list[int]], spans: Sequence[tuple[int, int]]
                      ) -> list[float]:
        """Per sequence, the summed log-probability of its `(start, length)` span of tokens
        given those before it (one forward pass over the right-padded batch)."""
        width = max(len(s) for s in seqs)
        ids = np.zeros([len(seqs), width], np.int32)
        for j, s in enumerate(seqs):
            ids[j, :len(s)] = s
        logp = tf.nn.log_softmax(tf.cast(self.model(ids), tf.float32)).numpy()
        out = []
        for j, (p_len, c_len) in enumerate(spans):
            pos = np.arange(p_len - 1, p_len - 1 + c_len)
            out.append(float(logp[j, pos, ids[j, pos + 1]].sum()))
        return out
