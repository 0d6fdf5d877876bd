"""One FedMD round: tfkit's process (TFF) vs the original per-party `model.fit`/`predict` loop.

    uv run python benchmarks/fedmd_round.py [--width 1.0] [--alignment 5000] [--parties 10]
        [--pretrain 2000] [--json PATH]

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


def make_parties(data, args, weights=None):
    set_seed(0)
    models = paper_cnns(args.parties, data.num_classes, data.input_shape, args.width)
    parties = []
    for i, (cid, model) in enumerate(zip(data.party_ids, models, strict=True)):
        x, y = client_arrays(data.private, cid)
        party = Party(cid, model, x, y, private_batch_size=PRIVATE_BATCH, seed=i)
        if weights is None:
            party.fit_labels(data.public_x[:args.pretrain], data.public_y[:args.pretrain], 1, 128)
            party.train_private(5)
        else:
            model.set_weights(weights[i])
        parties.append(party)
    return parties


def original_round(parties, data, x_align) -> float:
    """The authors' loop: Keras predict / fit per party (two compiled models sharing layers)."""
    compiled = []
    for p in parties:  # compiled once, as in the original (not timed)
        classifier = keras.Model(p.model.inputs, p.model.outputs)
        classifier.compile(keras.optimizers.Adam(1e-3),
                           keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        matcher = keras.Model(p.model.inputs, p.model.outputs)
        matcher.compile(keras.optimizers.Adam(1e-3), "mean_absolute_error")
        compiled.append((classifier, matcher))
    x = x_align.astype(np.float32) / 255.0
    t0 = time.perf_counter()
    logits = [classifier.predict(x, verbose=0) for classifier, _ in compiled]
    consensus = np.mean(logits, axis=0)
    for p, (classifier, matcher) in zip(parties, compiled, strict=True):
        matcher.fit(x, consensus, batch_size=256, epochs=1, shuffle=True, verbose=0)
        classifier.fit(p.x_private, p.y_private, batch_size=PRIVATE_BATCH,
                       epochs=REVISIT_EPOCHS, shuffle=True, verbose=0)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--width", type=float, default=1.0, help="paper CNN width (1.0 = paper)")
    ap.add_argument("--alignment", type=int, default=5000)
    ap.add_argument("--parties", type=int, default=10)
    ap.add_argument("--pretrain", type=int, default=2000, help="MNIST images for the warm start")
    ap.add_argument("--json")
    args = ap.parse_args()
    data = femnist_letters(num_parties=args.parties)
    base = make_parties(data, args)
    weights = [p.model.get_weights() for p in base]
    x_align = data.public_x[alignment_indices(len(data.public_x), args.alignment, 0, 1)]

    peer = make_parties(data, args, weights)
    original_round(peer, data, x_align[:256])  # warm-up: builds predict/train functions
    for p, w in zip(peer, weights, strict=True):
        p.model.set_weights(w)
    peer_s = original_round(peer, data, x_align)
    peer_acc = float(np.mean([p.accuracy(data.test_x, data.test_y) for p in peer]))

    ours = make_parties(data, args, weights)
    with runtime.local_context():
        warm = build_fedmd_process(ours, data.public_x[:256], alignment_size=256,
                                   revisit_epochs=REVISIT_EPOCHS, log=lambda m: None)
        warm.next(warm.initialize())  # warm-up: traces the steps, starts the worker
        for p, w in zip(ours, weights, strict=True):
            p.model.set_weights(w)
        process = build_fedmd_process(ours, data.public_x, alignment_size=args.alignment,
                                      revisit_epochs=REVISIT_EPOCHS, log=lambda m: None)
        t0 = time.perf_counter()
        _, metrics = process.next({"round": np.int32(0)})
        ours_s = time.perf_counter() - t0 - float(metrics["stage_seconds"]["evaluate"])
    ours_acc = float(np.mean([p.accuracy(data.test_x, data.test_y) for p in ours]))
    tff_share = float(metrics["stage_seconds"]["aggregate"]) / ours_s
    print(f"FedMD round: {args.parties} paper CNNs (width {args.width}), "
          f"{args.alignment} alignment samples, {REVISIT_EPOCHS} private epochs\n")
    print(markdown_table([["seconds per round", ours_s, peer_s, peer_s / ours_s],
                          ["mean test accuracy after the round", ours_acc, peer_acc, ""],
                          ["TFF share of the round", tff_share, "", ""]],
                         ["", "tfkit (TFF process)", "original fit/predict", "speedup"]))
    if args.json:
        write_json(args.json, {"name": "fedmd_round", "metrics": {
            "ours_s": ours_s, "peer_s": peer_s, "speedup_x": peer_s / ours_s,
            "tff_share": tff_share, "ours_acc": ours_acc, "peer_acc": peer_acc},
            "command": "uv run python benchmarks/fedmd_round.py " + " ".join(sys.argv[1:])})
    return 0


if __name__ == "__main__":
    sys.exit(main())
