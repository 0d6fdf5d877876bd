"""How far MLP activation sparsity falls with longer training: a ReLU decoder LM per width.

Trains the character-level ReLU decoder LM of `tfkit run lazy-neuron --quick` (hidden 64,
sequence 64, batch 64, Adam 1e-3) on tinyshakespeare for `--steps` optimizer steps at each
MLP width, probing the nonzero fraction of every MLP layer on 256 train and 256 test windows
every `--probe-every` steps, and prints the curve beside the paper's figure (T5-Base: 3.0 %
nonzero; every layer but the first ≤ ~10 %). This is the emergence part of the experiment
run longer than the quick preset's 124 steps; it is a measurement, not a speed benchmark.

    uv run python benchmarks/lazy_neuron_emergence.py [--steps 300] [--widths 128 512]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

PAPER_T5_NONZERO = 0.030  # T5-Base, Figure 1 of the paper


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300, help="optimizer steps per width")
    p.add_argument("--widths", type=int, nargs="+", default=[128, 512], help="MLP widths d_ff")
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--length", type=int, default=64, help="characters per window")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--probe-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the numbers here (tfkit bench)")
    args = p.parse_args()

    from tfkit import datasets
    from tfkit.backend import keras, set_seed
    from tfkit.errors import TfkitError
    from tfkit.models import DecoderLM
    from tfkit.runs import markdown_table
    from tfkit.sparsity import SparsityMonitor

    try:
        text = datasets.load("tinyshakespeare", download=False)
    except TfkitError as e:
        print(f"tinyshakespeare not available ({e}); set TFKIT_DATA_DIR", file=sys.stderr)
        sys.exit(1)
    train_ids, test_ids = text.encode(text.train), text.encode(text.test)
    # fresh windows every step
    x, y = datasets.next_token_windows(train_ids, args.steps * args.batch, args.length, args.seed)
    xt, yt = datasets.next_token_windows(test_ids, 256, args.length, args.seed + 1)
    curves, rows, metrics = {}, [], {}
    for width in args.widths:
        keras.backend.clear_session()
        set_seed(args.seed)
        model = DecoderLM(text.vocab_size, args.length, num_layers=args.depth,
                          hidden_dim=args.hidden, num_heads=4, intermediate_dim=width,
                          activation="relu")
        model.compile(keras.optimizers.Adam(1e-3),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        monitor = SparsityMonitor({"train": x[:256], "test": xt}, args.probe_every,
                                  max_batches=None)
        start = time.process_time()
        model.fit(x, y, batch_size=args.batch, epochs=1, callbacks=[monitor], verbose=0)
        cpu = time.process_time() - start
        loss = float(model.evaluate(xt, yt, batch_size=args.batch, verbose=0))
        test = [h for h in monitor.history if h["split"] == "test"]
        curves[width] = test
        final = test[-1]["nonzero_fraction_per_layer"]
        rows.append([width, args.steps, f"{loss:.3f}",
                     " / ".join(f"{f:.1%}" for f in final), f"{cpu:.0f}"])
        for i, f in enumerate(final):
            metrics[f"w{width}_layer{i + 1}_nonzero"] = round(f, 4)
        metrics[f"w{width}_test_loss"] = round(loss, 4)
        print(f"d_ff {width}: test loss {loss:.3f}, nonzero (test) per layer "
              + " ".join(f"{f:.3f}" for f in final) + f", {cpu:.0f} s CPU; over training: "
              + ", ".join(f"{h['step']}: " + "/".join(f"{f:.3f}" for f in
                                                     h["nonzero_fraction_per_layer"])
                          for h in test), flush=True)

    print(f"\nReLU decoder LM, tinyshakespeare, hidden {args.hidden}, depth {args.depth}, "
          f"batch {args.batch} x {args.length} characters; paper T5-Base: "
          f"{PAPER_T5_NONZERO:.1%} nonzero, every layer but the first ≤ ~10 %\n")
    print(markdown_table(rows, ["d_ff", "steps", "test loss", "nonzero (test) per layer",
                                "CPU s"]))
    steps = [h["step"] for h in curves[args.widths[0]]]
    layers = len(curves[args.widths[0]][0]["nonzero_fraction_per_layer"])
    header = ["step"] + [f"d_ff {w} layer {i + 1}" for w in args.widths for i in range(layers)]
    table = [[s] + [f"{curves[w][j]['nonzero_fraction_per_layer'][i]:.1%}"
                    for w in args.widths for i in range(layers)]
             for j, s in enumerate(steps)]
    print("\nnonzero (test) over training\n")
    print(markdown_table(table, header))
    if args.json:
        args.json.write_text(json.dumps({
            "name": "lazy_neuron_emergence", "metrics": metrics,
            "command": "uv run python benchmarks/lazy_neuron_emergence.py "
                       + " ".join(sys.argv[1:]).split(" --json")[0]}))


if __name__ == "__main__":
    main()
