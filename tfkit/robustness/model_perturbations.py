"""Model perturbations: remove a block (or a ViT sub-layer), restrict attention, read layers.

tfkit's ViT and ResNet are chains of named layers ("block_0", "block_1", ...). The functions
here re-run such a chain with some layers replaced, and return a `predict_fn` (images -> logits)
that any evaluator accepts; the original model is not modified.

    >>> from tfkit.models import ViT
    >>> vit = ViT(image_size=8, patch_size=4, num_layers=2, hidden_dim=16, num_heads=2,
    ...           intermediate_dim=32, num_classes=3, channels=1)
    >>> fn = remove_block(vit, 1, part="mlp")     # block 1 keeps its attention, loses its MLP
    >>> fn(np.zeros((2, 8, 8, 1), "float32")).shape
    TensorShape([2, 3])
    >>> fn = restrict_attention(vit, layers=[0, 1], mode="self_cls")
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Literal

import numpy as np

from tfkit.backend import keras, tf
from tfkit.errors import TfkitError
from tfkit.layers import TransformerBlock

__all__ = ["chain_layers", "block_names", "chain_predict_fn", "remove_block",
           "restrict_attention", "attention_mask", "layer_outputs"]

Part = Literal["block", "attention", "mlp"]


class SurgeryError(TfkitError, ValueError):
    """The model does not have the layer structure a model perturbation needs."""


def chain_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers after the input of a functional model whose layers form a single chain."""
    if not getattr(model, "_is_graph_network", False):
        raise SurgeryError(f"{type(model).__name__} is not a functional Keras model; layer "
                           "perturbations need one (e.g. tfkit.models.ViT or ResNet)")
    layers = [la for la in model.layers if not isinstance(la, keras.layers.InputLayer)]
    previous = model.inputs[0]
    for layer in layers:
        if len(layer._inbound_nodes) != 1 or layer.input is not previous:
            raise SurgeryError(f"layer {layer.name!r} does not take the previous layer's "
                               "output; layer perturbations need a chain of layers")
        previous = layer.output
    return layers


def block_names(model: keras.Model) -> list[str]:
    """Names of the model's residual / Transformer blocks ("block_0", ...), in order."""
    names = [la.name for la in chain_layers(model) if la.name.startswith("block_")]
    if not names:
        raise SurgeryError("the model has no layers named block_0, block_1, ...; name your "
                           "residual blocks that way to run the layer suite")
    return names


def chain_predict_fn(model: keras.Model,
                     replace: Mapping[str, Callable[[tf.Tensor], tf.Tensor]] | None = None,
                     ) -> Callable[[tf.Tensor], tf.Tensor]:
    """images -> logits through the model's chain, with layers `replace[name]` swapped in."""
    layers, replace = chain_layers(model), dict(replace or {})
    unknown = set(replace) - {la.name for la in layers}
    if unknown:
        raise SurgeryError(f"no layers named {sorted(unknown)}; layers: "
                           + ", ".join(la.name for la in layers))

    @tf.function(reduce_retracing=True)
    def predict(x):
        for layer in layers:
            x = replace[layer.name](x) if layer.name in replace else layer(x, training=False)
        return x

    return predict


def _without(block: keras.layers.Layer, part: Part) -> Callable[[tf.Tensor], tf.Tensor]:
    if part == "block":
        if isinstance(block, TransformerBlock):
            return lambda x: x
        if hasattr(block, "shortcut"):  # ResNet: only the skip path (projection if any) remains
            return lambda x: tf.nn.relu(block.shortcut(x, training=False))
        raise SurgeryError(f"don't know how to remove {type(block).__name__} {block.name!r}")
    if not isinstance(block, TransformerBlock):
        raise SurgeryError(f"part={part!r} needs a Transformer block; {block.name!r} is a "
                           f"{type(block).__name__}")
    if part == "mlp":  # keep attention only
        return lambda x: x + block.attend(x, training=False)[0]
    if part == "attention":  # keep the MLP only
        return lambda x: x + block.feed_forward(block.feed_forward_norm(x), training=False)
    raise SurgeryError(f"part must be 'block', 'attention' or 'mlp', got {part!r}")


def remove_block(model: keras.Model, index: int, part: Part = "block"
                 ) -> Callable[[tf.Tensor], tf.Tensor]:
    """predict_fn with block `index` (or only its "attention" / "mlp" sub-layer) removed."""
    names = block_names(model)
    if not 0 <= index < len(names):
        raise SurgeryError(f"block index {index} out of range 0..{len(names) - 1}")
    return chain_predict_fn(model, {names[index]: _without(model.get_layer(names[index]), part)})


def attention_mask(grid: int, mode: Literal["local", "self_cls"], window: int = 1) -> np.ndarray:
    """[1 + grid², 1 + grid²] bool mask over [CLS] + row-major patches; True = may attend.

    "local": a patch sees patches within `window` rows/columns and [CLS]. "self_cls": a patch
    sees only itself and [CLS]. [CLS] always sees every token (it gathers the class evidence).
    """
    rows, cols = np.divmod(np.arange(grid * grid), grid)
    if mode == "local":
        near = (np.abs(rows[:, None] - rows[None]) <= window) & \
               (np.abs(cols[:, None] - cols[None]) <= window)
    elif mode == "self_cls":
        near = np.eye(grid * grid, dtype=bool)
    else:
        raise SurgeryError(f"mode must be 'local' or 'self_cls', got {mode!r}")
    mask = np.ones([grid * grid + 1] * 2, bool)
    mask[1:, 1:] = near
    return mask


def restrict_attention(model: keras.Model, layers: Iterable[int],
                       mode: Literal["local", "self_cls"] = "local", window: int = 1
                       ) -> Callable[[tf.Tensor], tf.Tensor]:
    """predict_fn of a ViT whose blocks `layers` attend only as `attention_mask` allows."""
    names, layers = block_names(model), list(layers)
    for i in layers:  # before reading a token count: a ResNet's blocks have none
        if not isinstance(model.get_layer(names[i]), TransformerBlock):
            raise SurgeryError(f"{names[i]!r} is not a Transformer block")
    tokens = model.get_layer(names[0]).input.shape[1]
    grid = int(round((tokens - 1) ** 0.5)) if tokens else 0
    if grid * grid + 1 != tokens:
        raise SurgeryError(f"{tokens} tokens is not [CLS] + a square patch grid")
    mask = tf.constant(attention_mask(grid, mode, window)[None])
    replace = {}
    for i in layers:
        block = model.get_layer(names[i])
        replace[names[i]] = lambda x, b=block: b(x, attention_mask=mask, training=False)
    return chain_predict_fn(model, replace)


def layer_outputs(model: keras.Model, names: Iterable[str]
                  ) -> Callable[[tf.Tensor], list[tf.Tensor]]:
    """images -> [output of each named layer] (one forward pass)."""
    layers, wanted = chain_layers(model), list(names)
    missing = set(wanted) - {la.name for la in layers}
    if missing:
        raise SurgeryError(f"no layers named {sorted(missing)}")

    @tf.function(reduce_retracing=True)
    def outputs(x):
        found = {}
        for layer in layers:
            x = layer(x, training=False)
            if layer.name in wanted:
                found[layer.name] = x
            if len(found) == len(wanted):
                break
        return [found[n] for n in wanted]

    return outputs
