"""Lazy Neuron in a few lines: a Top-k ViT trained with model.fit, its activation sparsity,
and a batch-1 TFLite export whose second MLP matmul reads only the k active rows.

    uv run python examples/lazy_neuron.py
"""

from tfkit import datasets
from tfkit.backend import keras
from tfkit.datasets.pipeline import to_float
from tfkit.models import ViT
from tfkit.sparsity import (
    SparsityMonitor,
    gathered_top_k,
    latency_ms,
    max_abs_diff,
    nonzero_fraction,
    to_tflite,
)

digits = datasets.load("digits")  # 8x8 handwritten digits, embedded in scikit-learn
x, y = to_float(digits.train.x), digits.train.y
x_test, y_test = to_float(digits.test.x), digits.test.y

# A ReLU ViT whose MLPs keep only the 8 largest of 128 activations per token.
model = ViT(image_size=8, patch_size=2, num_layers=2, hidden_dim=32, num_heads=2,
            intermediate_dim=128, channels=1, activation="relu", top_k=8)
model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
monitor = SparsityMonitor({"test": x_test[:256]}, every_n_steps=20)
model.fit(x, y, epochs=5, batch_size=64, callbacks=[monitor], verbose=0)
print("test accuracy:", model.evaluate(x_test, y_test, verbose=0)[1])
print("nonzero fraction per MLP layer:", nonzero_fraction(model, x_test))
print("over training:", [round(sum(h["nonzero_fraction_per_layer"]) / 2, 3)
                         for h in monitor.history])

# TFLite at a static batch of 1 (as on a device): top_k + gather + a k-wide matmul instead of
# the dense second matmul.
flat = to_tflite(gathered_top_k(model), batch_size=1)
print("max |Keras - TFLite|:", max_abs_diff(model, flat, x_test[:32]))
print("batch-1 latency, XNNPACK on:", latency_ms(flat, x_test[:1]))
print("int8 size:", len(to_tflite(gathered_top_k(model), int8=True, batch_size=1)), "bytes vs",
      len(flat))
