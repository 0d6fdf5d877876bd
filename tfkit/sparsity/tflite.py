"""TFLite for sparse MLPs: conversion variants, a gather-based Top-k graph, on-device timing.

Variants (`to_tflite`): float32, dynamic-range int8 (`int8=True`), and sparse weight storage
(`sparse_weights=True`, `tf.lite.Optimize.EXPERIMENTAL_SPARSITY`) for pruned models, whose
block-sparse FULLY_CONNECTED weights run on TFLite's sparse kernels.

`gathered_top_k(model)` returns an inference copy in which every Top-k MLP computes its second
matmul from only the k active rows of V (top_k + gather + a k-wide matmul per token), so the
TFLite graph does `2·d·k` instead of `2·d·d_ff` FLOPs there. The flatbuffers run on tfkit's one
interpreter wrapper, `tfkit.export.TFLiteModel`, the way a device does it: the `tflite_runtime`
package (falling back to `tf.lite.Interpreter`), 1 thread, batch 1, XNNPACK on or off.
"""

from __future__ import annotations

import time

import numpy as np

from tfkit.backend import keras, tf
from tfkit.export.tflite import TFLiteModel, check_float32, clone_with
from tfkit.layers import FeedForward

__all__ = ["GatheredFeedForward", "gathered_top_k", "to_tflite", "predict_tflite", "max_abs_diff",
           "latency_ms", "compare_latency"]


@keras.utils.register_keras_serializable(package="tfkit")
class GatheredFeedForward(FeedForward):
    """Inference form of a Top-k `FeedForward`: `V` is read only at the k active rows.

    `out = Σ_j h_j · V[idx_j] + b` over the k (value, index) pairs of `top_k(act(Kᵀx))`:
    mathematically the same as `FeedForward` with `top_k` (no dropout at inference).

    Args:
        See `tfkit.layers.FeedForward`; `top_k` is required.

    Example:
        >>> ff = GatheredFeedForward(intermediate_dim=32, top_k=4)
        >>> ff(tf.zeros([2, 5, 8])).shape
        TensorShape([2, 5, 8])
    """

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        if self.top_k is None or self.top_k >= self.intermediate_dim:
            return super().call(x, training=training)
        h = self.activation_fn(self.intermediate_dense(x))
        values, indices = tf.math.top_k(h, k=self.top_k, sorted=False)    # [..., k]
        rows = tf.gather(self.output_dense.kernel, indices)              # [..., k, d]
        out = tf.matmul(values[..., None, :], rows)[..., 0, :]           # [..., d]
        return out + self.output_dense.bias


def _copy_model(model: keras.Model) -> keras.Model:
    """A fresh, weight-equal copy of a functional model (tfkit models rebuild from config)."""
    try:
        copy = model.__class__.from_config(model.get_config())
    except (TypeError, ValueError, NotImplementedError):
        copy = keras.models.clone_model(model)
    if len(copy.weights) != len(model.weights):  # a subclassed model rebuilt unbuilt / changed
        raise ValueError(f"gathered_top_k copies functional models (tfkit's ViT, DecoderLM, or "
                         f"keras.Model(inputs, outputs)); {type(model).__name__} does not "
                         "rebuild with its weights from get_config(); build it functionally")
    copy.set_weights(model.get_weights())
    return copy


def gathered_top_k(model: keras.Model) -> keras.Model:
    """A copy of `model` whose Top-k FeedForwards use `GatheredFeedForward` (same outputs):
    FeedForwards nested in blocks (tfkit's ViT, DecoderLM) and FeedForward layers of a
    functional or Sequential model alike."""
    from tfkit.sparsity.measure import feed_forward_layers

    top_level = [layer for layer in getattr(model, "layers", [])
                 if type(layer) is FeedForward and layer.top_k is not None]
    if top_level:  # a user's functional / Sequential model built on FeedForward layers
        copy = clone_with(model, lambda layer: GatheredFeedForward if type(layer) is FeedForward
                          and layer.top_k is not None else None)
    else:
        copy = _copy_model(model)
    for owner_name, ff in feed_forward_layers(copy):
        if ff.top_k is None or isinstance(ff, GatheredFeedForward):
            continue
        owner = copy.get_layer(owner_name.split("/")[0])
        fast = GatheredFeedForward.from_config(ff.get_config())
        fast.build(tf.TensorShape([None, None, ff.intermediate_dense.kernel.shape[0]]))
        fast.set_weights(ff.get_weights())
        for attr, value in list(vars(owner).items()):
            if value is ff:
                setattr(owner, attr, fast)
    return copy


def _input_spec(model: keras.Model) -> tf.TensorSpec:
    """The one input of `model`: a functional model's `Input`, else (subclassed) the tensor it
    was first called on."""
    if model.inputs:
        specs = list(model.inputs)
    else:
        saved = model.save_spec()  # None until the model has been called
        if saved is None:
            raise ValueError(f"model {model.name!r} has no known input shape; call the model "
                             "once on an example batch (or build it) before converting it")
        specs = tf.nest.flatten(saved)
    if len(specs) != 1:
        raise ValueError(f"to_tflite(batch_size=...) converts single-input models; "
                         f"{model.name!r} takes {len(specs)} inputs")
    return tf.TensorSpec(specs[0].shape, specs[0].dtype)


def to_tflite(model: keras.Model, int8: bool = False, sparse_weights: bool = False,
              batch_size: int | None = None) -> bytes:
    """Converts `model` to a TFLite flatbuffer.

    Args:
        model: a Keras model with one input (fixed shape except the batch); a subclassed
            model must have been called once (its input shape comes from that call).
        int8: dynamic-range int8 weights (`Optimize.DEFAULT`, no representative data).
        sparse_weights: store sparse (pruned) weights in TFLite's sparse format so sparse
            FULLY_CONNECTED kernels run them (`Optimize.EXPERIMENTAL_SPARSITY`).
        batch_size: fix the batch dimension (1 on a device). A static shape lets the converter
            fold the shape arithmetic of every Dense on 3-D input (SHAPE/GATHER/PACK ops) and
            lets XNNPACK take the whole graph: 2.2x faster for a small ViT at batch 1. `None`
            keeps the batch dynamic.

    Raises:
        ExportError (a ValueError): the model computes in float16/bfloat16 (mixed precision;
            TFLite converts float32 graphs).
        ValueError: `batch_size` is given for a model without one known input.
    """
    check_float32(model)
    if batch_size is None:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
    else:
        given = _input_spec(model)
        spec = tf.TensorSpec([batch_size, *given.shape[1:]], given.dtype)
        forward = tf.function(lambda x: model(x, training=False))
        converter = tf.lite.TFLiteConverter.from_concrete_functions(
            [forward.get_concrete_function(spec)], model)
    optimizations = []
    if int8:
        optimizations.append(tf.lite.Optimize.DEFAULT)
    if sparse_weights:
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    converter.optimizations = optimizations
    return converter.convert()


def _runner(flatbuffer: bytes, xnnpack: bool) -> TFLiteModel:
    """The flatbuffer on the shared interpreter wrapper: 1 thread, batch 1 (as on a device)."""
    return TFLiteModel(flatbuffer, num_threads=1, xnnpack=xnnpack)


def predict_tflite(flatbuffer: bytes, x: np.ndarray, xnnpack: bool = True) -> np.ndarray:
    """Runs the flatbuffer row by row at batch 1 (as on a device); returns stacked outputs."""
    return _runner(flatbuffer, xnnpack).predict(x)


def max_abs_diff(model: keras.Model, flatbuffer: bytes, x: np.ndarray) -> float:
    """Largest |Keras - TFLite| output difference over the rows of `x` (batch 1 in TFLite)."""
    expected = np.asarray(model(x, training=False))
    return float(np.max(np.abs(predict_tflite(flatbuffer, x) - expected)))


def latency_ms(flatbuffer: bytes, example: np.ndarray, xnnpack: bool = True, runs: int = 100,
               warmup: int = 10) -> dict[str, float]:
    """Median and p90 wall time of one batch-1 `invoke()` on 1 thread, in milliseconds."""
    timed = compare_latency({"model": flatbuffer}, example, runs=runs, xnnpack_modes=(xnnpack,),
                            rounds=1, warmup=warmup)
    return next(iter(timed.values()))


def compare_latency(flatbuffers: dict[str, bytes], example: np.ndarray, runs: int = 100,
                    xnnpack_modes: tuple[bool, ...] = (True, False), rounds: int = 5,
                    warmup: int = 10) -> dict[str, dict[str, float]]:
    """Batch-1, 1-thread latency of several models, interleaved so CPU contention hits all alike.

    Returns {"<name>/xnnpack_on|off": {"median_ms", "p90_ms"}}; `runs` invokes per entry, spread
    over `rounds` round-robin passes.
    """
    runners = {}
    for name, flat in flatbuffers.items():
        for xnnpack in xnnpack_modes:
            runner = _runner(flat, xnnpack)
            runner.invoke(example)
            for _ in range(warmup - 1):
                runner.invoke()
            runners[f"{name}/xnnpack_{'on' if xnnpack else 'off'}"] = runner
    times: dict[str, list[float]] = {key: [] for key in runners}
    per_round = max(1, runs // rounds)
    for _ in range(rounds):
        for key, runner in runners.items():
            for _ in range(per_round):
                t0 = time.perf_counter()
                runner.invoke()
                times[key].append((time.perf_counter() - t0) * 1e3)
    return {key: {"median_ms": float(np.median(t)), "p90_ms": float(np.percentile(t, 90))}
            for key, t in times.items()}
