"""One FedMD round: tfkit's process (TFF) vs the original per-party `model.fit`/`predict` loop.

    uv run python benchmarks/fedmd_round.py [--width 1.0] [--alignment 5000] [--parties 10]
        [--pretrain 2000] [--jit] [--json PATH]

Both sides start from the same weights (the paper CNNs, briefly pretrained on MNIST and
trained on their FEMNIST letters; embedded digits upscaled to 28x28 when the data is absent)
and run the same round: logits on the alignment set -> mean -> 1 epoch of MAE on the consensus
(batch 256) -> 4 private epochs (batch 5). Ours: `build_fedmd_process(...).next` (compiled
`tf.function` steps, consensus through a local TFF worker). Peer: the authors' pattern,
`model.predict` + numpy mean + `model_logits.fit` + `model.fit` per party. Reported: seconds
per round, speedup, TFF's share of our round, and mean test accuracy after the round.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tfkit.backend import keras, set_seed  # noqa: E402
from tfkit.federated import runtime  # noqa: E402
from tfkit.federated.fedmd import (  # noqa: E402
    Party,
    alignment_indices,
    build_fedmd_process,
    client_arrays,
    femnist_letters,
    paper_cnns,
)
from tfkit.runs import markdown_table, write_json  # noqa: E402

REVISIT_EPOCHS, PRIVATE_BATCH = 4, 5


def make_parties(data, args, weights=None, jit_compile=False):
    set_seed(0)
    models = paper_cnns(args.parties, data.num_classes, data.input_shape, args.width)
    parties = []
    for i, (cid, model) in enumerate(zip(data.party_ids, models, strict=True)):
        x, y = client_arrays(data.private, cid)
        party = Party(cid, model, x, y, private_batch_size=PRIVATE_BATCH, seed=i,
                      jit_compile=jit_compile)
        if weights is None:
            party.fit_labels(data.public_x[:args.pretrain], data.public_y[:args.pretrain], 1, 128)
            party.train_private(5)
        else:
            model.set_weights(weights[i])
        parties.append(party)
    return parties


def compile_original(parties) -> list:
    """The authors' setup, built once (not timed): per party a classifier (cross-entropy) and a
    logit matcher (MAE) sharing the party model's layers, each with its own Adam."""
    compiled = []
    for p in parties:
        classifier = keras.Model(p.model.inputs, p.model.outputs)
        classifier.compile(keras.optimizers.Adam(1e-3),
                           keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        matcher = keras.Model(p.model.inputs, p.model.outputs)
        matcher.compile(keras.optimizers.Adam(1e-3), "mean_absolute_error")
        compiled.append((classifier, matcher))
    return compiled


def reset_original(parties, compiled, weights) -> None:
    """Restores the starting weights and fresh (zero) Adam state, keeping the traced functions."""
    for p, (classifier, matcher), w in zip(parties, compiled, weights, strict=True):
        p.model.set_weights(w)
        for opt in (classifier.optimizer, matcher.optimizer):
            for v in opt.variables:
                v.assign(np.zeros(v.shape, v.dtype.as_numpy_dtype))


def original_round(parties, compiled, x_align) -> dict[str, float]:
    """The authors' loop: Keras predict / fit per party; returns seconds per phase."""
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
    return {"total": time.perf_counter() - t0, "communicate+aggregate": t1 - t0,
            "digest": digest_s, "revisit": revisit_s}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--width", type=float, default=1.0, help="paper CNN width (1.0 = paper)")
    ap.add_argument("--alignment", type=int, default=5000)
    ap.add_argument("--parties", type=int, default=10)
    ap.add_argument("--pretrain", type=int, default=2000, help="MNIST images for the warm start")
    ap.add_argument("--jit", action="store_true", help="XLA-compile our training steps")
    ap.add_argument("--json")
    args = ap.parse_args()
    data = femnist_letters(num_parties=args.parties)
    base = make_parties(data, args)
    weights = [p.model.get_weights() for p in base]
    x_align = data.public_x[alignment_indices(len(data.public_x), args.alignment, 0, 1)]
    # Warm-up size with the same last-batch sizes as the round (for batches of 256 and of
    # predict's 32), so that neither side traces a function inside the timed round.
    warmup = min(len(x_align), 256 + len(x_align) % 256)

    peer = make_parties(data, args, weights)
    compiled = compile_original(peer)
    original_round(peer, compiled, x_align[:warmup])  # warm-up: traces predict/train
    reset_original(peer, compiled, weights)
    peer_phases = original_round(peer, compiled, x_align)
    peer_s = peer_phases["total"]
    peer_acc = float(np.mean([p.accuracy(data.test_x, data.test_y) for p in peer]))

    ours = make_parties(data, args, weights, jit_compile=args.jit)
    fresh = [p.get_state() for p in ours]  # starting weights, zero Adam state, shuffling state
    with runtime.local_context():
        warm = build_fedmd_process(ours, x_align[:warmup], alignment_size=warmup,
                                   revisit_epochs=REVISIT_EPOCHS, log=lambda m: None)
        warm.next(warm.initialize())  # warm-up: traces the steps, starts the worker
        for p, state in zip(ours, fresh, strict=True):
            p.set_state(state)
        process = build_fedmd_process(ours, data.public_x, alignment_size=args.alignment,
                                      revisit_epochs=REVISIT_EPOCHS, log=lambda m: None)
        t0 = time.perf_counter()
        _, metrics = process.next({"round": np.int32(0)})
        ours_s = time.perf_counter() - t0 - float(metrics["stage_seconds"]["evaluate"])
    ours_acc = float(np.mean([p.accuracy(data.test_x, data.test_y) for p in ours]))
    stage = {k: float(v) for k, v in metrics["stage_seconds"].items()}
    tff_share = stage["aggregate"] / ours_s
    print(f"FedMD round: {args.parties} paper CNNs (width {args.width}), "
          f"{args.alignment} alignment samples, {REVISIT_EPOCHS} private epochs, "
          f"XLA {'on' if args.jit else 'off'}, TF threads "
          f"{os.environ.get('TF_NUM_INTRAOP_THREADS', 'default')}\n")
    print(markdown_table([["seconds per round", ours_s, peer_s, peer_s / ours_s],
                          ["mean test accuracy after the round", ours_acc, peer_acc, ""],
                          ["  logits + mean", stage["communicate"] + stage["aggregate"],
                           peer_phases["communicate+aggregate"], ""],
                          ["  digest (MAE, 1 epoch)", stage["digest"], peer_phases["digest"], ""],
                          ["  revisit (private epochs)", stage["revisit"], peer_phases["revisit"],
                           ""],
                          ["TFF share of the round", tff_share, "", ""]],
                         ["", "tfkit (TFF process)", "original fit/predict", "speedup"]))
    if args.json:
        write_json(args.json, {"name": "fedmd_round", "metrics": {
            "ours_s": ours_s, "peer_s": peer_s, "speedup_x": peer_s / ours_s,
            "tff_share": tff_share, "ours_acc": ours_acc, "peer_acc": peer_acc,
            "ours_stage_s": stage, "peer_phase_s": peer_phases, "jit": args.jit},
            "command": "uv run python benchmarks/fedmd_round.py " + " ".join(sys.argv[1:])})
    return 0


if __name__ == "__main__":
    sys.exit(main())
