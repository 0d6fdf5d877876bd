"""How far MLP activation sparsity falls with longer training: ReLU decoder LMs, in lockstep.

Trains the character-level ReLU decoder LM of `tfkit run lazy-neuron --quick` (hidden 64,
sequence 64, batch 64, Adam) on tinyshakespeare, one model per `--widths` entry (each with
its `--lrs` learning rate), all on the same fresh batch at every step, so the curves of all
variants reach every step together. Every `--probe-every` steps it records, per model, the
nonzero fraction of every MLP layer on 256 train and 256 test windows and the test loss, and
checkpoints the models and optimizers into `--out`: a killed run resumes from there (and a
finished one just prints its tables). The curve is printed beside the paper's figure (T5-Base:
3.0 % nonzero; every layer but the first ≤ ~10 %). This is the emergence part of the
experiment run longer than the quick preset's 124 steps; a measurement, not a speed benchmark.

    uv run python benchmarks/lazy_neuron_emergence.py [--out /tmp/emergence] \
        [--steps 300] [--widths 128 512] [--lrs 1e-3] [--probe-every 100]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

PAPER_T5_NONZERO = 0.030  # T5-Base, Figure 1 of the paper
PROBE_WINDOWS = 256  # train and test windows per probe


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path,
                   help="checkpoints + curve.jsonl; the same --out resumes a killed run "
                        "(default: a new temporary folder, no resume)")
    p.add_argument("--steps", type=int, default=300, help="optimizer steps per model")
    p.add_argument("--widths", type=int, nargs="+", default=[128, 512], help="MLP widths d_ff")
    p.add_argument("--lrs", type=float, nargs="+", default=[1e-3],
                   help="Adam learning rate per width (one value = the same for all)")
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--length", type=int, default=64, help="characters per window")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--probe-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the final numbers here (tfkit bench)")
    args = p.parse_args()
    if len(args.lrs) == 1:
        args.lrs = args.lrs * len(args.widths)
    if len(args.lrs) != len(args.widths):
        p.error(f"--lrs needs 1 or {len(args.widths)} values, got {len(args.lrs)}")
    return args


def variant_name(width: int, lr: float) -> str:
    return f"d_ff {width}, lr {lr:g}"


class Variant:
    """One LM, its optimizer and a resumable checkpoint under `out/name`."""

    def __init__(self, args: argparse.Namespace, vocab: int, width: int, lr: float):
        from tfkit.backend import keras, set_seed, tf
        from tfkit.models import DecoderLM

        set_seed(args.seed)  # the same initial weights for every lr of one width
        self.name = variant_name(width, lr)
        self.model = DecoderLM(vocab, args.length, num_layers=args.depth,
                               hidden_dim=args.hidden, num_heads=4, intermediate_dim=width,
                               activation="relu")
        self.optimizer = keras.optimizers.Adam(lr)
        self.loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.step = tf.Variable(0, dtype=tf.int64)
        self.model(tf.zeros([1, args.length], tf.int32))
        self.optimizer.build(self.model.trainable_variables)
        ckpt = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, step=self.step)
        folder = args.out / f"ckpt_w{width}_lr{lr:g}"
        self.manager = tf.train.CheckpointManager(ckpt, str(folder), max_to_keep=1)
        if self.manager.latest_checkpoint:
            ckpt.restore(self.manager.latest_checkpoint).assert_consumed()

        @tf.function
        def train_step(x, y):
            with tf.GradientTape() as tape:
                loss = self.loss(y, self.model(x, training=True))
            grads = tape.gradient(loss, self.model.trainable_variables)
            self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables, strict=True))
            self.step.assign_add(1)
            return loss

        self.train_step = train_step


def probe(variant: Variant, windows: dict, batch: int) -> dict:
    from tfkit.sparsity import nonzero_fraction

    xt, yt = windows["test"]
    logits = variant.model.predict(xt, batch_size=batch, verbose=0)
    return {"variant": variant.name, "step": int(variant.step.numpy()),
            "test_loss": float(variant.loss(yt, logits)),
            **{f"{split}_nonzero": list(nonzero_fraction(variant.model, x,
                                                         batch_size=batch).values())
               for split, (x, _) in windows.items()}}


def print_tables(rows: list[dict], names: list[str]) -> None:
    from tfkit.runs import markdown_table

    by = {(r["variant"], r["step"]): r for r in rows}
    steps = sorted({r["step"] for r in rows})
    for split in ("test", "train"):
        header = ["step"] + [f"{n} (per layer)" for n in names]
        table = [[s] + [" / ".join(f"{f:.1%}" for f in by[n, s][f"{split}_nonzero"])
                        if (n, s) in by else "" for n in names] for s in steps]
        print(f"\nnonzero ({split}) over training; paper T5-Base {PAPER_T5_NONZERO:.1%}, every "
              "layer but the first ≤ ~10 %\n")
        print(markdown_table(table, header))
    print("\ntest loss (nats per character)\n")
    print(markdown_table([[s] + [f"{by[n, s]['test_loss']:.3f}" if (n, s) in by else ""
                                 for n in names] for s in steps], ["step"] + names))


def main() -> None:
    args = parse_args()
    from tfkit import datasets
    from tfkit.errors import TfkitError
    from tfkit.sparsity import dead_fraction

    try:
        text = datasets.load("tinyshakespeare", download=False)
    except TfkitError as e:
        print(f"tinyshakespeare not available ({e}); set TFKIT_DATA_DIR", file=sys.stderr)
        sys.exit(1)
    train_ids, test_ids = text.encode(text.train), text.encode(text.test)
    windows = {"train": datasets.next_token_windows(train_ids, PROBE_WINDOWS, args.length,
                                                    args.seed + 1_000_000),
               "test": datasets.next_token_windows(test_ids, PROBE_WINDOWS, args.length,
                                                   args.seed + 1)}
    scratch = None  # without --out: a temporary folder, removed when the script ends
    if args.out is None:
        scratch = tempfile.TemporaryDirectory(prefix="tfkit_emergence_")
        args.out = Path(scratch.name)
        print(f"checkpoints go to {args.out}, removed at the end (--out DIR keeps them, so that "
              "a killed run can resume)")
    args.out.mkdir(parents=True, exist_ok=True)
    curve_path = args.out / "curve.jsonl"
    rows = ([json.loads(line) for line in curve_path.read_text().splitlines()]
            if curve_path.exists() else [])
    variants = [Variant(args, text.vocab_size, w, lr)
                for w, lr in zip(args.widths, args.lrs, strict=True)]
    names = [v.name for v in variants]
    done = {(r["variant"], r["step"]) for r in rows}

    def record(v: Variant) -> None:
        if (v.name, int(v.step.numpy())) in done:
            return
        row = probe(v, windows, args.batch)
        rows.append(row)
        with curve_path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        v.manager.save()
        print(f"{time.strftime('%H:%M:%S')} {v.name} step {row['step']}: test loss "
              f"{row['test_loss']:.3f}, nonzero test "
              + " / ".join(f"{f:.1%}" for f in row["test_nonzero"]) + ", train "
              + " / ".join(f"{f:.1%}" for f in row["train_nonzero"]), flush=True)

    for v in variants:
        record(v)
    start_cpu = time.process_time()
    first = min(int(v.step.numpy()) for v in variants)
    for step in range(first, args.steps):
        # fresh windows every step, drawn from (seed, step): the same on resume
        x, y = datasets.next_token_windows(train_ids, args.batch, args.length,
                                           args.seed * 1_000_003 + step + 2)
        for v in variants:
            if int(v.step.numpy()) == step:
                v.train_step(x, y)
                if (step + 1) % args.probe_every == 0 or step + 1 == args.steps:
                    record(v)
    if args.steps > first:
        print(f"\n{args.steps - first} steps x {len(variants)} models in "
              f"{time.process_time() - start_cpu:.0f} s CPU (this process)")
    print(f"\nReLU decoder LM, tinyshakespeare, hidden {args.hidden}, depth {args.depth}, "
          f"batch {args.batch} x {args.length} characters, Adam")
    print_tables(rows, names)
    print("\nfinal models on the test windows: dead neurons (never active) and nonzero among the "
          "live ones, per layer\n")
    for v in variants:
        row = max((r for r in rows if r["variant"] == v.name), key=lambda r: r["step"])
        dead = list(dead_fraction(v.model, windows["test"][0], args.batch).values())
        live = [f / max(1.0 - d, 1e-9) for f, d in zip(row["test_nonzero"], dead, strict=True)]
        print(f"{v.name}, step {row['step']}: dead " + " / ".join(f"{d:.1%}" for d in dead)
              + "; nonzero among live " + " / ".join(f"{f:.1%}" for f in live))
    if args.json:
        from tfkit.bench import reproduce_command

        last = {n: max((r for r in rows if r["variant"] == n), key=lambda r: r["step"])
                for n in names}
        metrics = {f"{n}_layer{i + 1}_nonzero": round(f, 4)
                   for n, r in last.items() for i, f in enumerate(r["test_nonzero"])}
        metrics.update({f"{n}_test_loss": round(r["test_loss"], 4) for n, r in last.items()})
        args.json.write_text(json.dumps({
            "name": "lazy_neuron_emergence", "metrics": metrics,
            "command": reproduce_command()}))


if __name__ == "__main__":
    main()
