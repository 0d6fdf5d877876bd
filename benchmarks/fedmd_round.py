"""One FedMD round: tfkit's process (TFF) vs the original per-party `model.fit`/`predict` loop.

    TFKIT_DATA_DIR=../shared/data uv run python benchmarks/fedmd_round.py --width 0.25
        [--alignment 5000] [--parties 10] [--pretrain 2000] [--micro-batch 16] [--parallel 2]
        [--dropout-bits 8] [--json PATH]

Both sides start from the same weights (the paper CNNs, briefly pretrained on MNIST and
trained on their FEMNIST letters; data from TFKIT_DATA_DIR) and run the same round: logits on
the alignment set -> mean -> 1 epoch of MAE on the consensus (batch 256) -> 4 private epochs
(batch 5). BatchNorm mode "moving" on both sides (the quick preset's): while digesting, BN
normalizes with its moving statistics (the original side: its logit matcher calls the BN
layers with `training=False`; scale and offset are still trained).
Ours: `build_fedmd_process(...).next` (compiled `tf.function` steps, the consensus through a
local TFF worker), digest gradients accumulated over micro-batches of `--micro-batch` images,
and with `--dropout-bits` 8 or 16 the parties' dropout masks drawn from that many random bits
per unit (`Party(dropout_bits=...)`; the drop rate rounded to a multiple of 2**-bits).
Peer: the authors' pattern, `model.predict` + numpy mean + `model_logits.fit` + `model.fit`
per party, one party after another.

Two comparisons, in three processes (TensorFlow fixes its thread pools at start-up):
* one thread: TF_NUM_INTRAOP_THREADS=1 and TF_NUM_INTEROP_THREADS=1 on both sides, ours serial;
* whole CPU: the peer with TensorFlow's default threads (every core for each op); ours with
  one intra-op thread, `--parallel` inter-op threads and `--parallel` parties at once
  (`max_parallel_parties`). With one inter-op thread, concurrent parties' ops would queue on
  that one thread and the parties would run one after another.
Reported: seconds per round and per phase, speedups, TFF's share of our round, mean test
accuracy after the round (ours serial and parallel must be identical), load average.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REVISIT_EPOCHS, PRIVATE_BATCH = 4, 5


def make_parties(data, args, weights=None, micro=None, dropout_bits=None):
    from tfkit.backend import set_seed
    from tfkit.federated.fedmd import Party, client_arrays, paper_cnns

    set_seed(0)
    models = paper_cnns(args.parties, data.num_classes, data.input_shape, args.width)
    parties = []
    for i, (cid, model) in enumerate(zip(data.party_ids, models, strict=True)):
        x, y = client_arrays(data.private, cid)
        party = Party(cid, model, x, y, private_batch_size=PRIVATE_BATCH, seed=i,
                      digest_batch_norm="moving", digest_micro_batch_size=micro,
                      dropout_bits=dropout_bits)
        if weights is None:
            party.fit_labels(data.public_x[:args.pretrain], data.public_y[:args.pretrain], 1, 128)
            party.train_private(5)
        else:
            model.set_weights(weights[i])
        parties.append(party)
    return parties


def compile_original(parties) -> list:
    """The authors' setup, built once (not timed): per party a classifier (cross-entropy) and a
    logit matcher (MAE, BN on moving statistics) sharing the party model's layers, each with
    its own Adam."""
    from tfkit.backend import keras

    compiled = []
    for p in parties:
        classifier = keras.Model(p.model.inputs, p.model.outputs)
        classifier.compile(keras.optimizers.Adam(1e-3),
                           keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        x = inputs = keras.Input(p.model.input_shape[1:])
        for layer in p.model.layers[1:]:  # the paper CNNs are a chain of layers
            bn = isinstance(layer, keras.layers.BatchNormalization)
            x = layer(x, training=False) if bn else layer(x)
        matcher = keras.Model(inputs, x)
        matcher.compile(keras.optimizers.Adam(1e-3), "mean_absolute_error")
        compiled.append((classifier, matcher))
    return compiled


def reset_original(parties, compiled, weights) -> None:
    """Restores the starting weights and fresh (zero) Adam state, keeping the traced functions."""
    import numpy as np

    for p, (classifier, matcher), w in zip(parties, compiled, weights, strict=True):
        p.model.set_weights(w)
        for opt in (classifier.optimizer, matcher.optimizer):
            for v in opt.variables:
                v.assign(np.zeros(v.shape, v.dtype.as_numpy_dtype))


def original_round(parties, compiled, x_align) -> dict[str, float]:
    """The authors' loop: Keras predict / fit per party; returns seconds per phase."""
    import numpy as np

    x = x_align.astype(np.float32) / 255.0
    t0 = time.perf_counter()
    logits = [classifier.predict(x, verbose=0) for classifier, _ in compiled]
    consensus = np.mean(logits, axis=0)
    t1 = time.perf_counter()
    digest_s = revisit_s = 0.0
    for p, (classifier, matcher) in zip(parties, compiled, strict=True):
        t = time.perf_counter()
        matcher.fit(x, consensus, batch_size=256, epochs=1, shuffle=True, verbose=0)
        digest_s += time.perf_counter() - t
        t = time.perf_counter()
        classifier.fit(p.x_private, p.y_private, batch_size=PRIVATE_BATCH,
                       epochs=REVISIT_EPOCHS, shuffle=True, verbose=0)
        revisit_s += time.perf_counter() - t
    return {"total": time.perf_counter() - t0, "logits": t1 - t0, "digest": digest_s,
            "revisit": revisit_s}


def child(args) -> dict:
    """In this process: the peer (unless --no-peer), then ours with each --ours-parallel value."""
    import numpy as np

    from tfkit.federated import runtime
    from tfkit.federated.fedmd import alignment_indices, build_fedmd_process, femnist_letters

    data = femnist_letters(num_parties=args.parties)
    weights = [p.model.get_weights() for p in make_parties(data, args)]
    x_align = data.public_x[alignment_indices(len(data.public_x), args.alignment, 0, 1)]
    # Warm-up size with the same last-batch sizes as the round (for batches of 256 and the
    # predict batches), so that neither side traces a function inside the timed round.
    warmup = min(len(x_align), 256 + len(x_align) % 256)
    mean_acc = lambda ps: float(np.mean([p.accuracy(data.test_x, data.test_y) for p in ps]))  # noqa: E731
    out = {"load_before": os.getloadavg()[0]}

    if not args.no_peer:
        peer = make_parties(data, args, weights)
        compiled = compile_original(peer)
        original_round(peer, compiled, x_align[:warmup])  # warm-up: traces predict/train
        reset_original(peer, compiled, weights)
        out["peer"] = original_round(peer, compiled, x_align)
        out["peer"]["accuracy"] = mean_acc(peer)

    if not args.ours_parallel:
        out["load_after"] = os.getloadavg()[0]
        return out
    with runtime.local_context():
        for parallel in args.ours_parallel:
            # Fresh parties per setting: the dropout layers' random streams live in the traced
            # steps, so equal streams need equal histories (the same warm-up on both).
            ours = make_parties(data, args, weights, micro=args.micro_batch,
                                dropout_bits=args.dropout_bits)
            fresh = [p.get_state() for p in ours]  # weights, zero Adam state, shuffling state
            warm = build_fedmd_process(ours, x_align[:warmup], alignment_size=warmup,
                                       revisit_epochs=REVISIT_EPOCHS,
                                       max_parallel_parties=parallel, log=lambda m: None)
            warm.next(warm.initialize())  # warm-up: traces the steps, starts the worker
            for p, state in zip(ours, fresh, strict=True):
                p.set_state(state)
            process = build_fedmd_process(ours, data.public_x, alignment_size=args.alignment,
                                          revisit_epochs=REVISIT_EPOCHS,
                                          max_parallel_parties=parallel, log=lambda m: None)
            t0 = time.perf_counter()
            _, metrics = process.next({"round": np.int32(0)})
            stage = {k: float(v) for k, v in metrics["stage_seconds"].items()}
            total = time.perf_counter() - t0 - stage["evaluate"]
            out[f"ours_parallel_{parallel}"] = {
                "total": total, "logits": stage["communicate"] + stage["aggregate"],
                "digest": stage["digest"], "revisit": stage["revisit"],
                "tff_share": stage["aggregate"] / total, "accuracy": mean_acc(ours)}
    out["load_after"] = os.getloadavg()[0]
    return out


def run_child(args, threads: tuple[int, int] | None, ours_parallel: list[int],
              peer: bool = True) -> dict:
    """Runs `child` in a fresh process with (intra-op, inter-op) `threads` (None: TF's default)."""
    env = dict(os.environ)
    for key, value in zip(("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"),
                          threads or (None, None), strict=True):
        env.pop(key, None)
        if value:
            env[key] = str(value)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out.json"
        cmd = [sys.executable, __file__, "--child", str(path), "--width", str(args.width),
               "--alignment", str(args.alignment), "--parties", str(args.parties),
               "--pretrain", str(args.pretrain), "--micro-batch", str(args.micro_batch or 0),
               "--dropout-bits", str(args.dropout_bits or 0),
               "--ours-parallel", ",".join(map(str, ours_parallel))] + ([] if peer else
                                                                          ["--no-peer"])
        subprocess.run(cmd, env=env, check=True)
        return json.loads(path.read_text())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--width", type=float, default=1.0, help="paper CNN width (1.0 = paper)")
    ap.add_argument("--alignment", type=int, default=5000)
    ap.add_argument("--parties", type=int, default=10)
    ap.add_argument("--pretrain", type=int, default=2000, help="MNIST images for the warm start")
    ap.add_argument("--micro-batch", type=int, default=16,
                    help="our digest micro-batch (0 = whole batches of 256)")
    ap.add_argument("--dropout-bits", type=int, default=0, choices=(0, 8, 16),
                    help="our parties' dropout masks from this many random bits per unit "
                         "(0 = Keras' float32 draws, as the original side)")
    ap.add_argument("--parallel", type=int, default=os.cpu_count() or 1,
                    help="parties at once on our whole-CPU side (default: the cores)")
    ap.add_argument("--json")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--ours-parallel", default="", help=argparse.SUPPRESS)
    ap.add_argument("--no-peer", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.micro_batch = args.micro_batch or None
    args.dropout_bits = args.dropout_bits or None
    if args.child:
        args.ours_parallel = [int(v) for v in args.ours_parallel.split(",") if v]
        Path(args.child).write_text(json.dumps(child(args)))
        return 0

    from tfkit.runs import markdown_table, write_json

    t0 = time.perf_counter()
    # One thread: the peer and ours serial in one process. Whole CPU: ours with `--parallel`
    # parties at once, each party's ops on one intra-op thread, in a second process; the peer
    # with TF's default threads in a third.
    one = run_child(args, (1, 1), [1])
    parallel = run_child(args, (1, args.parallel), [args.parallel], peer=False)
    whole = run_child(args, None, [])
    ours_one, ours_whole = one["ours_parallel_1"], parallel[f"ours_parallel_{args.parallel}"]
    print(f"\nFedMD round: {args.parties} paper CNNs (width {args.width}), {args.alignment} "
          f"alignment samples, {REVISIT_EPOCHS} private epochs, BatchNorm 'moving' in the "
          f"digest; ours: digest micro-batch {args.micro_batch or 'none (256)'}, dropout "
          f"masks {f'from {args.dropout_bits} bits' if args.dropout_bits else 'by Keras'}; "
          f"{os.cpu_count()} cores\n")
    rows = []
    for name, key in (("seconds per round", "total"), ("  logits + mean", "logits"),
                      ("  digest (MAE, 1 epoch)", "digest"),
                      ("  revisit (private epochs)", "revisit")):
        rows.append([name, ours_one[key], one["peer"][key], one["peer"][key] / ours_one[key],
                     ours_whole[key], whole["peer"][key], whole["peer"][key] / ours_whole[key]])
    rows.append(["mean test accuracy after the round", ours_one["accuracy"],
                 one["peer"]["accuracy"], "", ours_whole["accuracy"],
                 whole["peer"]["accuracy"], ""])
    rows.append(["TFF share of our round", ours_one["tff_share"], "", "",
                 ours_whole["tff_share"], "", ""])
    rows.append(["load average (process start, end)", f"{one['load_before']:.1f}, "
                 f"{one['load_after']:.1f}", "", "", f"{parallel['load_before']:.1f}, "
                 f"{parallel['load_after']:.1f}", f"{whole['load_before']:.1f}, "
                 f"{whole['load_after']:.1f}", ""])
    print(markdown_table(rows, [
        "", "tfkit, 1 thread", "original, 1 thread", "speedup",
        f"tfkit, {args.parallel} parties at once x 1 thread", "original, TF default threads",
        "speedup"]))
    print(f"\nwhole script: {time.perf_counter() - t0:.0f} s")
    if args.json:
        from tfkit.bench import reproduce_command

        write_json(args.json, {"name": "fedmd_round", "metrics": {
            "one_thread": one, "ours_parallel": parallel, "whole_cpu": whole,
            "speedup_one_thread_x": one["peer"]["total"] / ours_one["total"],
            "speedup_whole_cpu_x": whole["peer"]["total"] / ours_whole["total"]},
            "command": reproduce_command()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
