"""Lazy Neuron: activation-sparsity measurement, Top-k MLPs in keras-nlp blocks, sparse TFLite.

    >>> from tfkit.sparsity import nonzero_fraction, SparsityMonitor, mlp_flops

- `nonzero_fraction(model, data)`: nonzero fraction of the MLP activation per layer;
  `dead_fraction`: neurons never active on `data`.
- `SparsityMonitor`: the same, over training steps, with TensorBoard scalars.
- `mlp_flops` / `model_mlp_flops`: analytic FLOPs of dense vs Top-k MLPs.
- `TopKTransformerEncoder` / `TopKTransformerDecoder` / `to_top_k`: keras-nlp blocks, Top-k.
- `tflite`: `to_tflite`, `gathered_top_k`, `latency_ms`, `max_abs_diff`, interpreters.
- `pruning`: tfmot block pruning of the MLP kernels for TFLite's sparse kernels.
- `evaluation`: ECE, symmetric label noise, Gaussian noise / blur corruptions.
"""

from tfkit.sparsity.callback import SparsityMonitor
from tfkit.sparsity.evaluation import (
    evaluate_classifier,
    expected_calibration_error,
    symmetric_label_noise,
)
from tfkit.sparsity.flops import MlpFlops, mlp_flops, model_mlp_flops
from tfkit.sparsity.measure import (
    MeasureError,
    dead_fraction,
    feed_forward_layers,
    nonzero_fraction,
)
from tfkit.sparsity.tflite import (
    GatheredFeedForward,
    gathered_top_k,
    latency_ms,
    max_abs_diff,
    predict_tflite,
    to_tflite,
)

__all__ = ["MeasureError", "SparsityMonitor", "nonzero_fraction", "dead_fraction",
           "feed_forward_layers",
           "MlpFlops", "mlp_flops", "model_mlp_flops", "to_tflite", "gathered_top_k",
           "GatheredFeedForward", "latency_ms", "max_abs_diff", "predict_tflite",
           "evaluate_classifier", "expected_calibration_error", "symmetric_label_noise"]
