"""How far MLP activation sparsity falls with longer training: ReLU LMs or ViTs, in lockstep.

`--model lm` (default) trains the character-level ReLU decoder LM of `tfkit run lazy-neuron
--quick` (hidden 64, sequence 64, batch 64, Adam) on tinyshakespeare; `--model vit` a ReLU
ViT (32x32 images in `--patch`-pixel patches, hidden 64, batch 64, Adam) on the CIFAR-10
train images. One model per `--widths` entry (each with its `--lrs` learning rate), all on
the same fresh batch at every step, so the curves of all variants reach every step together.
Every `--probe-every` steps it records, per model, the nonzero fraction of every MLP layer on
256 train and 256 test windows (images) and the test loss (and, for ViTs, accuracy), and
checkpoints the models and optimizers into `--out`: a killed run resumes from there (and a
finished one just prints its tables). The curve is printed beside the paper's figure (T5-Base
3.0 %, ViT-B/16 6.3 % nonzero; every layer but the first ≤ ~10 %). This is the emergence part
of the experiment run longer than the quick preset's 124 LM / 375 ViT steps; a measurement,
not a speed benchmark.

    uv run python benchmarks/lazy_neuron_emergence.py [--out /tmp/emergence] \
        [--model lm] [--steps 300] [--widths 128 512] [--lrs 1e-3] [--probe-every 100]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

PAPER_NONZERO = {"lm": ("T5-Base", 0.030), "vit": ("ViT-B/16", 0.063)}  # the paper's Figure 1
PROBE_WINDOWS = 256  # train and test windows (images) per probe


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path,
                   help="checkpoints + curve.jsonl; the same --out resumes a killed run "
                        "(default: a new temporary folder, no resume)")
    p.add_argument("--model", choices=("lm", "vit"), default="lm",
                   help="lm: decoder LM on tinyshakespeare; vit: ViT on CIFAR-10")
    p.add_argument("--steps", type=int, default=300, help="optimizer steps per model")
    p.add_argument("--widths", type=int, nargs="+", default=[128, 512], help="MLP widths d_ff")
    p.add_argument("--lrs", type=float, nargs="+", default=[1e-3],
                   help="Adam learning rate per width (one value = the same for all)")
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--length", type=int, default=64, help="characters per window (lm)")
    p.add_argument("--patch", type=int, default=4, help="patch side in pixels (vit)")
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

    def __init__(self, args: argparse.Namespace, data: TextData | ImageData, width: int,
                 lr: float):
        from tfkit.backend import keras, set_seed, tf

        set_seed(args.seed)  # the same initial weights for every lr of one width
        self.name = variant_name(width, lr)
        self.model = data.model(args, width)
        self.optimizer = keras.optimizers.Adam(lr)
        self.loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.step = tf.Variable(0, dtype=tf.int64)
        self.model(tf.zeros([1, *data.input_shape], data.input_dtype))
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


class TextData:
    """tinyshakespeare: fresh random windows per step, 256 fixed train/test windows to probe."""

    loss_unit = "nats per character"

    def __init__(self, args: argparse.Namespace):
        from tfkit import datasets

        text = datasets.load("tinyshakespeare", download=False)
        self.vocab, self.seed, self.length = text.vocab_size, args.seed, args.length
        self.input_shape, self.input_dtype = [args.length], "int32"
        self.train_ids, test_ids = text.encode(text.train), text.encode(text.test)
        self.probes = {
            "train": datasets.next_token_windows(self.train_ids, PROBE_WINDOWS, args.length,
                                                 args.seed + 1_000_000),
            "test": datasets.next_token_windows(test_ids, PROBE_WINDOWS, args.length,
                                                args.seed + 1)}

    def model(self, args: argparse.Namespace, width: int):
        from tfkit.models import DecoderLM

        return DecoderLM(self.vocab, args.length, num_layers=args.depth, hidden_dim=args.hidden,
                         num_heads=4, intermediate_dim=width, activation="relu")

    def batch(self, step: int, size: int) -> tuple:
        """Fresh windows every step, drawn from (seed, step): the same on resume."""
        from tfkit import datasets

        return datasets.next_token_windows(self.train_ids, size, self.length,
                                           self.seed * 1_000_003 + step + 2)

    def describe(self, args: argparse.Namespace) -> str:
        return (f"ReLU decoder LM, tinyshakespeare, hidden {args.hidden}, depth {args.depth}, "
                f"batch {args.batch} x {args.length} characters, Adam")


class ImageData:
    """CIFAR-10 train images ([0, 1] floats): a random batch per step (no augmentation), 256
    train and 256 test images to probe."""

    loss_unit = "cross-entropy, nats"

    def __init__(self, args: argparse.Namespace):
        from tfkit import datasets

        cifar = datasets.load("cifar10", download=False)
        self.seed = args.seed
        self.x, self.y = cifar.train.x, cifar.train.y.reshape(-1)
        self.classes, self.input_shape = cifar.num_classes, list(self.x.shape[1:])
        self.input_dtype = "float32"
        test = cifar.test.sample(PROBE_WINDOWS, args.seed + 1)  # (the files are class-sorted)
        train = cifar.train.sample(PROBE_WINDOWS, args.seed + 1_000_000)
        self.probes = {split: (d.x.astype("float32") / 255.0, d.y.reshape(-1))
                       for split, d in (("train", train), ("test", test))}

    def model(self, args: argparse.Namespace, width: int):
        from tfkit.models import ViT

        return ViT(image_size=self.input_shape[0], patch_size=args.patch,
                   num_layers=args.depth, hidden_dim=args.hidden, num_heads=4,
                   intermediate_dim=width, channels=self.input_shape[-1], activation="relu",
                   num_classes=self.classes)

    def batch(self, step: int, size: int) -> tuple:
        """A random batch drawn from (seed, step): the same on resume."""
        import numpy as np

        rows = np.random.default_rng((self.seed, step)).integers(0, len(self.x), size)
        return self.x[rows].astype("float32") / 255.0, self.y[rows]

    def describe(self, args: argparse.Namespace) -> str:
        return (f"ReLU ViT, CIFAR-10 ({len(self.x)} train images), {args.patch}x{args.patch} "
                f"patches, hidden {args.hidden}, depth {args.depth}, batch {args.batch}, Adam")


def probe(variant: Variant, windows: dict, batch: int) -> dict:
    import numpy as np

    from tfkit.sparsity import nonzero_fraction

    xt, yt = windows["test"]
    logits = variant.model.predict(xt, batch_size=batch, verbose=0)
    row = {"variant": variant.name, "step": int(variant.step.numpy()),
           "test_loss": float(variant.loss(yt, logits))}
    if logits.ndim == 2:  # a classifier: also its accuracy on the probe images
        row["test_accuracy"] = float(np.mean(np.argmax(logits, -1) == yt))
    return {**row, **{f"{split}_nonzero": list(nonzero_fraction(variant.model, x,
                                                                batch_size=batch).values())
                      for split, (x, _) in windows.items()}}


def print_tables(rows: list[dict], names: list[str], model: str, loss_unit: str) -> None:
    from tfkit.runs import markdown_table

    by = {(r["variant"], r["step"]): r for r in rows}
    steps = sorted({r["step"] for r in rows})
    for split in ("test", "train"):
        header = ["step"] + [f"{n} (per layer)" for n in names]
        table = [[s] + [" / ".join(f"{f:.1%}" for f in by[n, s][f"{split}_nonzero"])
                        if (n, s) in by else "" for n in names] for s in steps]
        paper, value = PAPER_NONZERO[model]
        print(f"\nnonzero ({split}) over training; paper {paper} {value:.1%}, every "
              "layer but the first ≤ ~10 %\n")
        print(markdown_table(table, header))
    for key, title in (("test_loss", f"test loss ({loss_unit})"),
                       ("test_accuracy", "test accuracy (probe images)")):
        if any(key in r for r in rows):
            print(f"\n{title}\n")
            print(markdown_table([[s] + [f"{by[n, s][key]:.3f}" if (n, s) in by else ""
                                         for n in names] for s in steps], ["step"] + names))


def main() -> None:
    args = parse_args()
    from tfkit.errors import TfkitError
    from tfkit.sparsity import dead_fraction

    try:
        data = (ImageData if args.model == "vit" else TextData)(args)
    except TfkitError as e:
        print(f"the {args.model} data is not available ({e}); set TFKIT_DATA_DIR",
              file=sys.stderr)
        sys.exit(1)
    windows = data.probes
    scratch = None  # without --out: a temporary folder, removed when the script ends
    if args.out is None:
        scratch = tempfile.TemporaryDirectory(prefix="tfkit_emergence_")
        args.out = Path(scratch.name)
        print(f"checkpoints go to {args.out}, removed at the end (--out DIR keeps them, so that "
              "a killed run can resume)")
    args.out.mkdir(parents=True, exist_ok=True)
    curve_path = args.out / "curve.jsonl"
    kind_path = args.out / "model.txt"  # an --out holds one kind of model (LM folders of
    kind = (kind_path.read_text().strip() if kind_path.exists()  # older runs have no file)
            else "lm" if curve_path.exists() else args.model)
    if kind != args.model:
        print(f"{args.out} holds a --model {kind} run; pass --model {kind} to resume it, or "
              "another --out", file=sys.stderr)
        sys.exit(2)
    kind_path.write_text(args.model + "\n")
    rows = ([json.loads(line) for line in curve_path.read_text().splitlines()]
            if curve_path.exists() else [])
    variants = [Variant(args, data, w, lr)
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
        x, y = data.batch(step, args.batch)
        for v in variants:
            if int(v.step.numpy()) == step:
                v.train_step(x, y)
                if (step + 1) % args.probe_every == 0 or step + 1 == args.steps:
                    record(v)
    if args.steps > first:
        print(f"\n{args.steps - first} steps x {len(variants)} models in "
              f"{time.process_time() - start_cpu:.0f} s CPU (this process)")
    print(f"\n{data.describe(args)}")
    print_tables(rows, names, args.model, data.loss_unit)
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
        metrics.update({f"{n}_test_accuracy": round(r["test_accuracy"], 4)
                        for n, r in last.items() if "test_accuracy" in r})
        args.json.write_text(json.dumps({
            "name": "lazy_neuron_emergence" + ("" if args.model == "lm" else f"_{args.model}"),
            "metrics": metrics,
            "command": reproduce_command()}))


if __name__ == "__main__":
    main()
