"""Batched KV-cache generation: tfkit's sampler vs keras-nlp 0.8 `CausalLM.generate`, on CPU.

Both sides are the same size of GPT-2-style decoder with random weights (no downloads): a
keras-nlp `GPT2CausalLM` built from a small config and a tfkit `DecoderLM` with equal layers,
width, heads, MLP width and vocabulary. Both decode the same batch of left-padded prompts for
the same number of new tokens with random sampling at T=0.5 (no early stop), after one warm-up
call each (tracing and XLA compilation excluded). keras-nlp runs with its defaults: `generate`
XLA-compiled (`compile(jit_compile=True)`), a `RandomSampler`, a prefill of the whole
`max_length` and decoding from the shortest prompt. The timed calls are interleaved (one call
of each decoder per round) and each decoder's median is reported, so that load from other
processes falls on all of them alike. Pin the threads for a fair comparison:

    TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 \
        uv run python benchmarks/generation.py [--batch 32] [--prompt 64] [--new 32]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np


def _median_times(fns: dict, rounds: int) -> dict:
    """Median seconds per call of each function, timed in interleaved rounds after a warm-up."""
    for fn in fns.values():
        fn()  # warm-up: tracing / compilation
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--prompt", type=int, default=64, help="prompt tokens")
    p.add_argument("--new", type=int, default=32, help="new tokens per row")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=7, help="timed rounds (median reported)")
    p.add_argument("--json", type=Path, help="also write the numbers here (tfkit bench)")
    args = p.parse_args()

    import keras_nlp

    from tfkit.agents.sampler import KVCacheSampler
    from tfkit.backend import set_seed
    from tfkit.models import DecoderLM

    set_seed(0)
    total = args.prompt + args.new
    rng = np.random.default_rng(0)
    ids = rng.integers(3, args.vocab, size=[args.batch, args.prompt]).astype(np.int32)
    ids[: args.batch // 2, : args.prompt // 4] = 0  # some rows left-padded

    backbone = keras_nlp.models.GPT2Backbone(
        vocabulary_size=args.vocab, num_layers=args.layers, num_heads=args.heads,
        hidden_dim=args.hidden, intermediate_dim=4 * args.hidden, max_sequence_length=total)
    theirs = keras_nlp.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
    theirs.compile(sampler=keras_nlp.samplers.RandomSampler(temperature=0.5))
    # keras-nlp pads on the right and generates into the padded slots after each prompt
    tok = np.zeros([args.batch, total], np.int32)
    mask = np.zeros([args.batch, total], bool)
    for i, row in enumerate(ids):
        real = row[row > 0]
        tok[i, : len(real)] = real
        mask[i, : len(real)] = True
    inputs = {"token_ids": tok, "padding_mask": mask}

    def run_theirs():
        theirs.generate(inputs)  # no preprocessor: no end token, fills every padded slot

    ours_model = DecoderLM(args.vocab, total, args.layers, args.hidden, args.heads,
                           4 * args.hidden)
    sampler = KVCacheSampler(ours_model, eos_id=-1)  # never stops early, like keras-nlp here
    graph_sampler = KVCacheSampler(ours_model, eos_id=-1, jit_compile=False)

    def run_ours():
        sampler(ids, args.new, 0.5, seed=0)[0].numpy()

    def run_ours_graph():
        graph_sampler(ids, args.new, 0.5, seed=0)[0].numpy()

    t = _median_times({"theirs": run_theirs, "ours": run_ours, "graph": run_ours_graph},
                      args.repeats)
    t_theirs, t_ours, t_graph = t["theirs"], t["ours"], t["graph"]
    n = args.batch * args.new
    threads = os.environ.get("TF_NUM_INTRAOP_THREADS", "default")
    print(f"device: CPU ({threads} intra-op threads); batch {args.batch}, prompt {args.prompt}, "
          f"new {args.new}, {args.layers} layers x {args.hidden} wide, vocab {args.vocab}; "
          f"median of {args.repeats} interleaved rounds")
    print(f"params: keras-nlp {theirs.count_params():,}  tfkit {ours_model.count_params():,}")
    print(f"keras-nlp GPT2CausalLM.generate : {n / t_theirs:9.1f} tokens/s ({t_theirs:.3f} s)")
    print(f"tfkit KVCacheSampler (XLA)      : {n / t_ours:9.1f} tokens/s ({t_ours:.3f} s)")
    print(f"tfkit KVCacheSampler (no XLA)   : {n / t_graph:9.1f} tokens/s ({t_graph:.3f} s)")
    print(f"speed-up: {t_theirs / t_ours:.2f}x")
    if args.json:
        from tfkit.bench import reproduce_command

        args.json.write_text(json.dumps({
            "name": "generation",
            "metrics": {"ours_tokens_per_s": round(n / t_ours, 1),
                        "peer_tokens_per_s": round(n / t_theirs, 1),
                        "ours_no_xla_tokens_per_s": round(n / t_graph, 1),
                        "speedup_x": round(t_theirs / t_ours, 2)},
            "command": reproduce_command()}))


if __name__ == "__main__":
    main()
