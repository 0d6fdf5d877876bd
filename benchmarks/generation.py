"""Batched KV-cache generation: tfkit's sampler vs keras-nlp 0.8 `CausalLM.generate`, on CPU.

Both sides are the same size of GPT-2-style decoder with random weights (no downloads): a
keras-nlp `GPT2CausalLM` built from a small config and a tfkit `DecoderLM` with equal layers,
width, heads, MLP width and vocabulary. Both decode the same batch of left-padded prompts for
the same number of new tokens with random sampling (no early stop), after one warm-up call.

    uv run python benchmarks/generation.py [--batch 32] [--prompt 64] [--new 32]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def _time(fn, repeats: int) -> float:
    fn()  # warm-up: tracing / compilation
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--prompt", type=int, default=64, help="prompt tokens")
    p.add_argument("--new", type=int, default=32, help="new tokens per row")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path, help="also write the numbers here (tfkit bench)")
    args = p.parse_args()

    import keras_nlp

    from tfkit.agents.sampler import KVCacheSampler
    from tfkit.backend import set_seed, tf
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

    t_theirs = _time(run_theirs, args.repeats)
    t_ours = _time(run_ours, args.repeats)
    t_graph = _time(run_ours_graph, args.repeats)
    n = args.batch * args.new
    print(f"device: CPU ({tf.config.threading.get_intra_op_parallelism_threads() or 'default'} "
          f"intra-op threads); batch {args.batch}, prompt {args.prompt}, new {args.new}, "
          f"{args.layers} layers x {args.hidden} wide, vocab {args.vocab}")
    print(f"params: keras-nlp {theirs.count_params():,}  tfkit {ours_model.count_params():,}")
    print(f"keras-nlp GPT2CausalLM.generate : {n / t_theirs:9.1f} tokens/s ({t_theirs:.3f} s)")
    print(f"tfkit KVCacheSampler (XLA)      : {n / t_ours:9.1f} tokens/s ({t_ours:.3f} s)")
    print(f"tfkit KVCacheSampler (no XLA)   : {n / t_graph:9.1f} tokens/s ({t_graph:.3f} s)")
    print(f"speed-up: {t_theirs / t_ours:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({
            "name": "generation",
            "metrics": {"ours_tokens_per_s": round(n / t_ours, 1),
                        "peer_tokens_per_s": round(n / t_theirs, 1),
                        "ours_no_xla_tokens_per_s": round(n / t_graph, 1),
                        "speedup_x": round(t_theirs / t_ours, 2)},
            "command": "uv run python benchmarks/generation.py " + " ".join(sys.argv[1:])}))


if __name__ == "__main__":
    main()
