"""Dense vs Top-k vs pruned vs both, as TFLite at batch 1 on 1 thread (XNNPACK on and off).

Every variant is converted with a static batch of 1 (`to_tflite(batch_size=1)`), as it runs on
a device; with a dynamic batch XNNPACK could not take the graph and the dense baseline was
2.2x slower than it needs to be.
"""

from __future__ import annotations

import numpy as np

from tfkit.backend import keras, tf
from tfkit.sparsity.probed import compile_classifier
from tfkit.sparsity.pruning import prune_mlps, prune_neurons, pruning_callbacks, strip_pruning
from tfkit.sparsity.tflite import (
    compare_latency,
    gathered_top_k,
    max_abs_diff,
    predict_tflite,
    to_tflite,
)

__all__ = ["prune_and_finetune", "prune_neurons_and_finetune", "compare_on_device",
           "speedup_summary", "on_device_study"]


def prune_and_finetune(model: keras.Model, train: tf.data.Dataset, epochs: int = 2,
                       sparsity: float = 0.9, learning_rate: float = 5e-4,
                       block_size: tuple[int, int] = (4, 1)) -> keras.Model:
    """Block-prunes the MLP kernels of `model` to `sparsity` while fine-tuning on `train`.

    The polynomial schedule reaches `sparsity` after 70 % of the steps; the rest recovers
    accuracy at the final sparsity. `train` is a finite dataset (one of unknown size, e.g.
    filtered, is counted with one pass). Returns the stripped (plain Keras) model.
    """
    per_epoch = int(train.cardinality().numpy())
    if per_epoch == tf.data.INFINITE_CARDINALITY:
        raise ValueError("prune_and_finetune trains whole epochs of `train`, which repeats "
                         "forever; pass a finite dataset (without .repeat())")
    if per_epoch == tf.data.UNKNOWN_CARDINALITY:  # filtered / generator data: count one pass
        per_epoch = int(train.reduce(tf.constant(0, tf.int64), lambda n, *_: n + 1).numpy())
    steps = per_epoch * max(1, epochs)
    pruned = prune_mlps(model, sparsity, begin_step=0, end_step=max(1, int(0.7 * steps)),
                        block_size=block_size)
    compile_classifier(pruned, learning_rate)
    pruned.fit(train, epochs=max(1, epochs), callbacks=pruning_callbacks(), verbose=0)
    return strip_pruning(pruned)


def prune_neurons_and_finetune(model: keras.Model, train: tf.data.Dataset, epochs: int = 1,
                               sparsity: float = 0.9, learning_rate: float = 5e-4,
                               probe_batches: int = 4) -> keras.Model:
    """Removes the `sparsity` fraction of MLP neurons (the laziest, `prune_neurons`, ranked on
    `probe_batches` batches of `train`) and fine-tunes the narrower model on `train`."""
    probe = train.take(probe_batches).map(lambda x, y: x)
    narrow = prune_neurons(model, 1.0 - sparsity, probe)
    compile_classifier(narrow, learning_rate)
    narrow.fit(train, epochs=max(1, epochs), verbose=0)
    return narrow


def _is_top_k(model: keras.Model) -> bool:
    from tfkit.sparsity.measure import feed_forward_layers

    return any(ff.top_k is not None for _, ff in feed_forward_layers(model))


def compare_on_device(models: dict[str, keras.Model], x_eval: np.ndarray, y_eval: np.ndarray,
                      sparse_weights: tuple[str, ...] = (), latency_runs: int = 200,
                      parity_examples: int = 16,
                      quantizations: tuple[str, ...] = ("float32", "int8"),
                      batch_size: int | None = 1) -> dict:
    """Converts each model (float32 and dynamic-range int8) and measures it like a device.

    Top-k models are exported in their gathered form (`gathered_top_k`); models named in
    `sparse_weights` (pruned ones) are stored with TFLite's sparse weight format; `batch_size`
    is the static batch of the conversion (None = dynamic).

    Returns:
        {"variants": [{name, quantization, size_bytes, accuracy, max_abs_diff,
        xnnpack_on: {median_ms, p90_ms}, xnnpack_off: {...}}, ...]}, where `max_abs_diff` is
        the float32 TFLite output against the Keras model it came from.
    """
    flats, rows = {}, {}
    for name, model in models.items():
        export = gathered_top_k(model) if _is_top_k(model) else model
        sparse = name in sparse_weights
        for quantization in quantizations:
            key = f"{name}/{quantization}"
            flats[key] = to_tflite(export, int8=quantization == "int8", sparse_weights=sparse,
                                   batch_size=batch_size)
            rows[key] = {"name": name, "quantization": quantization,
                         "size_bytes": len(flats[key]),
                         "accuracy": float((predict_tflite(flats[key], x_eval).argmax(-1)
                                            == y_eval).mean())}
            if quantization == "float32":
                rows[key]["max_abs_diff"] = max_abs_diff(model, flats[key],
                                                         x_eval[:parity_examples])
    latency = compare_latency(flats, x_eval[:1], runs=latency_runs)
    for key, row in rows.items():
        row["xnnpack_on"] = latency[f"{key}/xnnpack_on"]
        row["xnnpack_off"] = latency[f"{key}/xnnpack_off"]
    return {"variants": list(rows.values())}


def speedup_summary(variants: list[dict], dense_names: tuple[str, ...] = ("dense",),
                    tolerance: float = 0.01) -> dict:
    """Best dense latency (XNNPACK on) vs the fastest sparse variant within `tolerance` of its
    accuracy (any quantization, XNNPACK on or off)."""
    dense = [v for v in variants if v["name"] in dense_names]
    best_dense = min(dense, key=lambda v: v["xnnpack_on"]["median_ms"])
    candidates = []
    for v in variants:
        if v["name"] in dense_names:
            continue
        for mode in ("xnnpack_on", "xnnpack_off"):
            candidates.append((v[mode]["median_ms"], mode, v))
    equal = [c for c in candidates if c[2]["accuracy"] >= best_dense["accuracy"] - tolerance]
    ms, mode, best = min(equal or candidates, key=lambda c: c[0])
    dense_ms = best_dense["xnnpack_on"]["median_ms"]
    return {"dense_ms": dense_ms, "dense_variant": f"{best_dense['name']}/"
            f"{best_dense['quantization']}/xnnpack_on", "dense_accuracy": best_dense["accuracy"],
            "sparse_ms": ms, "sparse_variant": f"{best['name']}/{best['quantization']}/{mode}",
            "sparse_accuracy": best["accuracy"], "speedup": dense_ms / ms,
            "equal_accuracy": bool(equal)}


def on_device_study(dense: keras.Model, topk: keras.Model, train: tf.data.Dataset,
                    x_eval: np.ndarray, y_eval: np.ndarray, prune_epochs: int = 2,
                    sparsity: float = 0.9, latency_runs: int = 200, int8: bool = True) -> dict:
    """Dense vs Top-k vs block-pruned vs both vs neuron-pruned, as TFLite at batch 1.

    The dense model is block-pruned (`prune_and_finetune`) and neuron-pruned
    (`prune_neurons_and_finetune`), the Top-k one block-pruned ("both"), each fine-tuned for
    `prune_epochs` on `train`; all five go through `compare_on_device` (block-pruned ones in
    TFLite's sparse weight format) and `speedup_summary`.

    Returns:
        `compare_on_device`'s variants, the `speedup_summary` keys, and `max_abs_diff`: the
        largest |Keras - TFLite| output of the Top-k model in float32.
    """
    models = {"dense": dense, "topk": topk,
              "pruned": prune_and_finetune(dense, train, prune_epochs, sparsity),
              "both": prune_and_finetune(topk, train, prune_epochs, sparsity),
              "neurons": prune_neurons_and_finetune(dense, train, prune_epochs, sparsity)}
    out = compare_on_device(models, x_eval, y_eval, sparse_weights=("pruned", "both"),
                            latency_runs=latency_runs,
                            quantizations=("float32", "int8") if int8 else ("float32",))
    out.update(speedup_summary(out["variants"]))
    out["max_abs_diff"] = max(v["max_abs_diff"] for v in out["variants"]
                              if v["name"] == "topk" and "max_abs_diff" in v)
    return out
