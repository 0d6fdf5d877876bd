"""Tiny run directories (a Top-k ViT on embedded digits, a decoder LM) for the export tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tfkit.backend import keras, set_seed
from tfkit.datasets import load
from tfkit.datasets.pipeline import to_float
from tfkit.models import DecoderLM, ViT
from tfkit.runs import RunDir


def train_digits_vit(run_dir: Path, epochs: int = 6) -> dict:
    """Trains a 2-block Top-k ViT on scikit-learn digits (seconds) and saves it as "topk"."""
    set_seed(0)
    data = load("digits")
    model = ViT(image_size=8, patch_size=4, num_layers=2, hidden_dim=32, num_heads=2,
                intermediate_dim=64, num_classes=10, channels=1, activation="relu", top_k=16)
    model.compile(keras.optimizers.Adam(3e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"])
    model.fit(to_float(data.train.x), data.train.y, batch_size=64, epochs=epochs, verbose=0)
    _, accuracy = model.evaluate(to_float(data.test.x), data.test.y, verbose=0)
    meta = {"kind": "image_classifier", "dataset": "digits", "input_shape": [8, 8, 1],
            "class_names": list(data.class_names), "metrics": {"accuracy": float(accuracy)},
            "primary": True}
    run = RunDir(run_dir, log=None)
    run.save_model(model, "topk", meta)
    return meta


@pytest.fixture(scope="session")
def vit_run(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("vit_run")
    train_digits_vit(path)
    return path


@pytest.fixture(scope="session")
def lm_run(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lm_run")
    set_seed(0)
    lm = DecoderLM(vocabulary_size=24, sequence_length=12, num_layers=1, hidden_dim=16,
                   num_heads=2, intermediate_dim=32)
    lm(np.ones((1, 4), np.int32))
    words = ["<pad>", "<unk>", *"abcdefghijklmnopqrstuv"]  # 24 ids, as tfkit.promot describes
    RunDir(path, log=None).save_model(lm, "lm", {
        "kind": "language_model", "primary": True,
        "tokenizer": {"type": "word", "split": "whitespace", "pad_id": 0, "unk_id": 1,
                      "vocabulary": words}})
    return path
