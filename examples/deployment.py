"""Deployment end to end on embedded data: train a Top-k ViT, export it, serve it, run it on-device.

    uv run python examples/deployment.py [--out /tmp/tfkit-deployment]

1. trains a small Top-k ViT on scikit-learn's digits and saves it into a run directory;
2. exports a SavedModel with explicit signatures (TF Serving layout) and calls it the way a
   server does, with uint8 images;
3. exports the four TFLite variants and prints their parity table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from tfkit.backend import keras, set_seed, tf
from tfkit.datasets import load
from tfkit.datasets.pipeline import to_float
from tfkit.export import TFLiteModel
from tfkit.export.cli import export_savedmodel, export_tflite
from tfkit.models import ViT
from tfkit.runs import RunDir


def train(run_dir: Path) -> None:
    set_seed(0)
    data = load("digits")
    model = ViT(image_size=8, patch_size=2, num_layers=2, hidden_dim=32, num_heads=2,
                intermediate_dim=64, num_classes=10, channels=1, activation="relu", top_k=16)
    model.compile(keras.optimizers.Adam(3e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"])
    model.fit(to_float(data.train.x), data.train.y, batch_size=64, epochs=10, verbose=0)
    _, accuracy = model.evaluate(to_float(data.test.x), data.test.y, verbose=0)
    print(f"Keras test accuracy: {accuracy:.4f}")
    RunDir(run_dir, log=None).save_model(model, "topk", {
        "kind": "image_classifier", "dataset": "digits", "input_shape": [8, 8, 1],
        "class_names": list(data.class_names), "metrics": {"accuracy": accuracy},
        "primary": True})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/tfkit-deployment"))
    out = parser.parse_args().out
    train(out / "run")

    export_savedmodel(out / "run", out / "saved_models" / "topk" / "1")
    serve = tf.saved_model.load(str(out / "saved_models" / "topk" / "1"))
    images = load("digits").test.x[:4, :, :, None]  # uint8 [4, 8, 8, 1], as a client sends
    result = serve.signatures["serving_default"](images=tf.constant(images))
    print("served labels:", [s.decode() for s in result["labels"].numpy()])

    export_tflite(out / "run", out / "tflite")
    int8 = TFLiteModel(out / "tflite" / "topk_int8.tflite")
    print("int8 on-device classes:", np.argmax(int8.predict(images / np.float32(255)), -1))


if __name__ == "__main__":
    main()
