"""Block-sparse magnitude pruning of the MLP weights with tfmot, for TFLite's sparse kernels.

`prune_mlps(model, ...)` wraps every `TransformerBlock` in tfmot's `PruneLowMagnitude` with its two
MLP kernels (K and V) as the prunable weights; fine-tune it with `pruning_callbacks()`, then
`strip_pruning` and convert with `to_tflite(..., sparse_weights=True)`. The default block
(4, 1) of a Keras kernel [in, out] is TFLite's 1x4 block of the [out, in] FULLY_CONNECTED
weight, the shape its float sparse kernel runs; use (16, 1) for int8 weights.

`prune_neurons(model, keep_fraction, data)` is structured pruning instead: it removes the
laziest MLP neurons (smallest mean activation times the norm of their row of V, on `data`)
and returns a narrower model of the same class. Its TFLite file is a dense, narrower MLP
that XNNPACK runs whole, which block-sparse weights (not delegable to XNNPACK) cannot match.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow_model_optimization as tfmot

from tfkit.backend import keras, tf
from tfkit.layers import TransformerBlock

__all__ = ["PrunableTransformerBlock", "prune_mlps", "strip_pruning", "pruning_callbacks",
           "one_shot_prune", "neuron_importance", "prune_neurons"]


@keras.utils.register_keras_serializable(package="tfkit")
class PrunableTransformerBlock(TransformerBlock):
    """A `TransformerBlock` that tells tfmot to prune its MLP kernels (K and V) only.

    Args:
        See `tfkit.layers.TransformerBlock`.

    Example:
        >>> block = PrunableTransformerBlock(num_heads=2, intermediate_dim=32)
        >>> _ = block(tf.zeros([1, 5, 8]))
        >>> [w.shape.as_list() for w in block.get_prunable_weights()]
        [[8, 32], [32, 8]]
    """

    def get_prunable_weights(self) -> list:
        return [self.feed_forward.intermediate_dense.kernel, self.feed_forward.output_dense.kernel]


def prune_mlps(model: keras.Model, target_sparsity: float = 0.9, begin_step: int = 0,
               end_step: int = 1000, block_size: tuple[int, int] = (4, 1)) -> keras.Model:
    """A functional copy of `model` whose MLP kernels are pruned while it trains.

    Args:
        model: a functional model of `TransformerBlock`s (tfkit ViT, DecoderLM).
        target_sparsity: fraction of MLP weights zeroed at `end_step`.
        begin_step: optimizer step where pruning starts.
        end_step: step where the polynomial schedule reaches `target_sparsity`.
        block_size: blocks pruned together, in the Keras kernel's [in, out] layout.

    Returns:
        An uncompiled model (weights copied from `model`); train it with `pruning_callbacks()`.
    """
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=float(target_sparsity), begin_step=int(begin_step),
        end_step=int(end_step), frequency=max(1, (end_step - begin_step) // 20))

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        if isinstance(layer, TransformerBlock):
            fresh = PrunableTransformerBlock.from_config(config)
            fresh.build(layer.input_shape)
            fresh.set_weights(layer.get_weights())
            return tfmot.sparsity.keras.prune_low_magnitude(
                fresh, pruning_schedule=schedule, block_size=tuple(block_size))
        fresh = layer.__class__.from_config(config)
        return fresh

    pruned = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:  # copy the weights of the non-block layers
        if not isinstance(layer, TransformerBlock) and layer.weights:
            pruned.get_layer(layer.name).set_weights(layer.get_weights())
    return pruned


def strip_pruning(model: keras.Model) -> keras.Model:
    """Removes the pruning wrappers; the zeroed weights stay (tfmot's `strip_pruning`)."""
    return tfmot.sparsity.keras.strip_pruning(model)


def pruning_callbacks() -> list[keras.callbacks.Callback]:
    """The callback tfmot needs during `fit` to advance the pruning schedule."""
    return [tfmot.sparsity.keras.UpdatePruningStep()]


def one_shot_prune(model: keras.Model, sparsity: float = 0.9,
                   block_size: tuple[int, int] = (4, 1)) -> keras.Model:
    """A copy of `model` with the smallest-magnitude MLP kernel blocks zeroed, no fine-tuning.

    For latency studies and as a starting point; `prune_mlps` + fine-tuning keeps accuracy.
    """
    from tfkit.sparsity.measure import feed_forward_layers
    from tfkit.sparsity.tflite import _copy_model

    copy = _copy_model(model)
    bi, bo = block_size
    for _, ff in feed_forward_layers(copy):
        for dense in (ff.intermediate_dense, ff.output_dense):
            w = dense.kernel.numpy()
            blocks = np.abs(w).reshape(w.shape[0] // bi, bi, w.shape[1] // bo, bo).mean((1, 3))
            keep = blocks > np.quantile(blocks, sparsity)
            dense.kernel.assign(w * np.repeat(np.repeat(keep, bi, 0), bo, 1))
    return copy


def neuron_importance(model: keras.Model, data: Any, batch_size: int = 128) -> list[np.ndarray]:
    """Per MLP layer, each neuron's summed activation on `data` times the norm of its row of V.

    `Σ_t h_tj · ||V_j||` ranks neuron j by the size of its contribution to the MLP output over
    the tokens of `data`: 0 for a neuron that never fires. Returns one [intermediate_dim] array
    per FeedForward (ReLU-like activations; the ranking is what matters).
    """
    from tfkit.sparsity.measure import as_batches, feed_forward_layers, probe_activations

    layers = feed_forward_layers(model)
    sums = {name: np.zeros(ff.intermediate_dim) for name, ff in layers}

    def add(name: str, h) -> None:  # activations summed over every token
        sums[name] += tf.reduce_sum(tf.reshape(h, [-1, h.shape[-1]]), axis=0).numpy()

    with probe_activations(layers, add):
        for x in as_batches(data, batch_size):
            model(x, training=False)
    return [sums[name] * np.linalg.norm(ff.output_dense.kernel.numpy(), axis=1)
            for name, ff in layers]


def prune_neurons(model: keras.Model, keep_fraction: float, data: Any) -> keras.Model:
    """A narrower copy of `model` keeping the `keep_fraction` most important MLP neurons.

    Args:
        model: a tfkit model with an `intermediate_dim` config entry (ViT, DecoderLM) whose
            FeedForwards all have that width.
        keep_fraction: fraction of the d_ff neurons kept per layer, in (0, 1] (at least one
            neuron is kept).
        data: inputs that rank the neurons (`neuron_importance`), e.g. ~500 training examples.

    Returns:
        A model of the same class with `intermediate_dim = round(keep_fraction * d_ff)`; the
        kept neurons' columns of K, entries of its bias and rows of V are copied, every other
        weight unchanged. Fine-tune it to recover accuracy.
    """
    from tfkit.sparsity.measure import feed_forward_layers

    if not 0.0 < keep_fraction <= 1.0:
        raise ValueError(f"prune_neurons needs 0 < keep_fraction <= 1 (the fraction of MLP "
                         f"neurons kept), got {keep_fraction}")
    config = model.get_config()
    if "intermediate_dim" not in config:
        raise ValueError(f"prune_neurons needs a model with an `intermediate_dim` config entry, "
                         f"got {type(model).__name__}")
    width = int(config["intermediate_dim"])
    keep = max(1, round(keep_fraction * width))
    narrow = model.__class__.from_config({**config, "intermediate_dim": keep})
    selected = {}  # id(variable) -> (kept indices, axis)
    for score, (_, ff) in zip(neuron_importance(model, data), feed_forward_layers(model),
                              strict=True):
        kept = np.sort(np.argsort(-score, kind="stable")[:keep])
        selected[id(ff.intermediate_dense.kernel)] = (kept, 1)
        selected[id(ff.intermediate_dense.bias)] = (kept, 0)
        selected[id(ff.output_dense.kernel)] = (kept, 0)
    weights = []
    for variable in model.weights:
        value = variable.numpy()
        if id(variable) in selected:
            kept, axis = selected[id(variable)]
            value = np.take(value, kept, axis=axis)
        weights.append(value)
    narrow.set_weights(weights)
    return narrow
