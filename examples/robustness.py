"""Evaluate any Keras model (or SavedModel) with tfkit's robustness suites.

    uv run python examples/robustness.py                       # trains a tiny ViT on digits
    uv run python examples/robustness.py --model my.keras --data cifar10

With --model, the file/folder is loaded (a .keras file, a Keras SavedModel, or a TF SavedModel
whose serving_default signature maps float [0, 1] images to logits); otherwise a small ViT is
trained on the embedded digits for a few seconds.
"""

from __future__ import annotations

import argparse

import numpy as np

from tfkit import datasets
from tfkit.backend import keras, tf
from tfkit.models import ViT
from tfkit.robustness import registry
from tfkit.robustness.cli import load_model
from tfkit.robustness.corruptions import corrupt


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help=".keras file or SavedModel folder (default: train a tiny ViT)")
    p.add_argument("--data", default="digits")
    p.add_argument("--data-dir")
    p.add_argument("--limit", type=int, default=200, help="random test images to evaluate")
    p.add_argument("--suites", default="clean,corruptions,adversarial,patch")
    args = p.parse_args()

    data = datasets.load(args.data, args.data_dir)
    test = data.test.sample(args.limit, seed=0)  # a random subset: some copies are class-sorted
    x = test.x.astype(np.float32) / 255.0
    x = x[..., None] if x.ndim == 3 else x
    y = test.y

    if args.model:
        model = load_model(args.model)
    else:
        model = ViT(image_size=x.shape[1], patch_size=2, num_layers=2, hidden_dim=32,
                    num_heads=2, intermediate_dim=64, channels=x.shape[-1])
        model.compile(keras.optimizers.Adam(3e-3),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"])
        xtr = data.train.x.astype(np.float32) / 255.0
        xtr = xtr[..., None] if xtr.ndim == 3 else xtr  # colour images have their channel axis
        model.fit(xtr, data.train.y, epochs=5, batch_size=64, verbose=0)

    # 1. The ops alone: corrupt a batch (works the same inside tf.data.Dataset.map).
    foggy = corrupt(tf.constant(x[:8]), "fog", severity=3, seed=0)
    print("fog, severity 3:", foggy.shape, foggy.dtype)

    # 2. Evaluators by name; each yields (name, value) pairs.
    results = registry.run(model, (x, y), args.suites.split(","),
                           options={"corruptions": {"severities": (1, 3, 5)}})
    for name, value in results.items():
        if isinstance(value, float):
            print(f"{name:40s} {value:.3f}")


if __name__ == "__main__":
    main()
