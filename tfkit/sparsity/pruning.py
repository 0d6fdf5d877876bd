"""Block-sparse magnitude pruning of the MLP weights with tfmot, for TFLite's sparse kernels.

`prune_mlps(model, ...)` wraps every `TransformerBlock` in tfmot's `PruneLowMagnitude` with its two
MLP kernels (K and V) as the prunable weights; fine-tune it with `pruning_callbacks()`, then
`strip_pruning` and convert with `to_tflite(..., sparse_weights=True)`. The default block
(4, 1) of a Keras kernel [in, out] is TFLite's 1x4 block of the [out, in] FULLY_CONNECTED
weight, the shape its float sparse kernel runs; use (16, 1) for int8 weights.
"""

from __future__ import annotations

import tensorflow_model_optimization as tfmot

from tfkit.backend import keras
from tfkit.layers import TransformerBlock

__all__ = ["PrunableTransformerBlock", "prune_mlps", "strip_pruning", "pruning_callbacks",
           "one_shot_prune"]


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
    import numpy as np

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
