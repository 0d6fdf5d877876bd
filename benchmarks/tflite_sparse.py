"""Sparse vs dense TFLite at batch 1 on 1 thread, XNNPACK on and off, side by side.

Two workloads, random weights (latency does not depend on training; accuracy is measured by
`tfkit run lazy-neuron`):

- `vit`: a ReLU ViT on 32x32x3 images (65 tokens), dense vs Top-k (gathered second matmul)
  vs block-pruned MLP weights (TFLite sparse kernels) vs both vs neuron-pruned (the laziest
  `sparsity` fraction of MLP neurons removed: a narrower dense MLP), float32 and dynamic-range
  int8, all converted with a static batch of 1 (`--dynamic-batch` for the old conversion);
- `decode`: one MLP block on a single token (the per-token step of LM decoding), where only
  the k active rows of V are read.

`vit_speedup_x` is the fastest non-dense variant against the dense float32 model (XNNPACK on);
`vit_sparse_kernels_speedup_x` leaves out the neuron-pruned model (Top-k, block-sparse, both).

    uv run python benchmarks/tflite_sparse.py [--hidden 128] [--width 1024] [--divisor 16]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--width", type=int, default=1024, help="MLP width d_ff")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--patch", type=int, default=4)
    p.add_argument("--divisor", type=int, default=16, help="k = d_ff / divisor")
    p.add_argument("--sparsity", type=float, default=0.9, help="pruned fraction of MLP weights")
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--dynamic-batch", action="store_true",
                   help="convert with a dynamic batch (XNNPACK then cannot take the graph)")
    p.add_argument("--json", type=Path, help="also write the numbers here (tfkit bench)")
    args = p.parse_args()

    from tfkit.backend import keras, set_seed
    from tfkit.layers import FeedForward
    from tfkit.models import ViT
    from tfkit.runs import markdown_table
    from tfkit.sparsity.pruning import one_shot_prune, prune_neurons
    from tfkit.sparsity.tflite import (
        GatheredFeedForward,
        compare_latency,
        gathered_top_k,
        max_abs_diff,
        to_tflite,
    )

    set_seed(0)
    k = args.width // args.divisor
    vit = lambda top_k: ViT(image_size=32, patch_size=args.patch, num_layers=args.layers,
                            hidden_dim=args.hidden, num_heads=4, intermediate_dim=args.width,
                            activation="relu", top_k=top_k)
    dense, topk = vit(None), vit(k)
    x = np.random.default_rng(0).random((8, 32, 32, 3)).astype("float32")
    models = {"dense": (dense, False), "topk": (gathered_top_k(topk), False),
              "pruned": (one_shot_prune(dense, args.sparsity), True),
              "both": (gathered_top_k(one_shot_prune(topk, args.sparsity)), True),
              "neurons": (prune_neurons(dense, 1 - args.sparsity, x), False)}
    batch = None if args.dynamic_batch else 1
    flats = {}
    for name, (model, sparse) in models.items():
        flats[f"vit/{name}/float32"] = to_tflite(model, sparse_weights=sparse, batch_size=batch)
        flats[f"vit/{name}/int8"] = to_tflite(model, int8=True, sparse_weights=sparse,
                                              batch_size=batch)
    diff = max_abs_diff(topk, flats["vit/topk/float32"], x)

    token = keras.Input((1, args.hidden))  # one decoding step through one MLP block
    slow, fast = FeedForward(args.width), GatheredFeedForward(args.width, top_k=k)
    mlp = {"dense": keras.Model(token, slow(token)), "topk": keras.Model(token, fast(token))}
    fast.set_weights(slow.get_weights())
    for name, model in mlp.items():
        flats[f"decode/{name}/float32"] = to_tflite(model, batch_size=batch)
    t = np.random.default_rng(1).random((1, 1, args.hidden)).astype("float32")

    vit_lat = compare_latency({k_: v for k_, v in flats.items() if k_.startswith("vit/")}, x,
                              runs=args.runs)
    dec_lat = compare_latency({k_: v for k_, v in flats.items() if k_.startswith("decode/")}, t,
                              runs=args.runs * 5)
    lat = {**vit_lat, **dec_lat}
    base = {"vit": lat["vit/dense/float32/xnnpack_on"]["median_ms"],
            "decode": lat["decode/dense/float32/xnnpack_on"]["median_ms"]}
    rows = []
    for key, v in lat.items():
        workload = key.split("/")[0]
        size = len(flats[key.rsplit("/", 1)[0]]) / 1024
        rows.append([key, size, v["median_ms"], v["p90_ms"], base[workload] / v["median_ms"]])
    print(f"ViT 32x32, patch {args.patch}, {args.layers} layers, hidden {args.hidden}, "
          f"d_ff {args.width}, k {k}, pruned {args.sparsity:.0%}; batch 1 "
          f"({'dynamic' if batch is None else 'static'} shape), 1 thread")
    print(markdown_table(rows, ["model/weights/XNNPACK", "size KiB", "median ms", "p90 ms",
                                "speedup vs dense float32 XNNPACK on"]))
    best_sparse = min(v["median_ms"] for key, v in vit_lat.items() if "/dense/" not in key)
    best_kernel = min(v["median_ms"] for key, v in vit_lat.items()
                      if "/pruned/" in key or "/both/" in key or "/topk/" in key)
    best_dense = min(v["median_ms"] for key, v in vit_lat.items()
                     if "/dense/" in key and key.endswith("on"))
    metrics = {"vit_dense_ms": best_dense, "vit_sparse_ms": best_sparse,
               "vit_speedup_x": best_dense / best_sparse,
               "vit_sparse_kernels_speedup_x": best_dense / best_kernel,
               "decode_dense_ms": base["decode"],
               "decode_topk_ms": lat["decode/topk/float32/xnnpack_on"]["median_ms"],
               "decode_speedup_x": base["decode"]
               / lat["decode/topk/float32/xnnpack_on"]["median_ms"],
               "topk_max_abs_diff": diff}
    print(" ".join(f"{m}={v:.4g}" for m, v in metrics.items()))
    if args.json:
        from tfkit.bench import reproduce_command

        args.json.write_text(json.dumps({"name": "tflite_sparse", "metrics": metrics,
                                         "command": reproduce_command()}))


if __name__ == "__main__":
    main()
