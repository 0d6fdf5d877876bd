"""Model-perturbation evaluators: block / sub-layer removal, restricted attention, layer CKA.

These need the model itself (a tfkit ViT / ResNet, or any functional Keras model whose residual
blocks are layers named block_0, block_1, ...), not just a `predict_fn`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from tfkit.backend import keras, tf
from tfkit.errors import TfkitError
from tfkit.layers import TransformerBlock
from tfkit.robustness import cka as cka_lib
from tfkit.robustness import model_perturbations as mp
from tfkit.robustness.evaluate import predict
from tfkit.robustness.inputs import (
    _uint8_images,
    as_dataset,
    check_input_shape,
    takes_pixels,
    to_uint8_pixels,
    uint8_input,
)
from tfkit.robustness.metrics import accuracy

__all__ = ["layers", "layer_cka"]

CKA_EXAMPLES = 500  # CKA on n examples builds n x n Gram matrices per layer


def _require_keras(model: Any, data: Any) -> tuple[keras.Model, Any]:
    """(model, batched dataset) after checking the model is a Keras model that takes the data."""
    if not isinstance(model, keras.Model):
        raise TfkitError("the layers suite needs a Keras model (it edits layers); a bare "
                         "predict_fn or a SavedModel signature only supports input suites: "
                         "drop `layers`, or pass the Keras model (.keras file)")
    pixels = takes_pixels(model)
    ds = as_dataset(data, scale_uint8=not pixels)  # no perturbation: uint8 stay raw pixels
    if pixels and uint8_input(model) and not _uint8_images(data):  # float [0, 1] as `prepare`
        ds = ds.map(lambda x, y: (tf.cast(to_uint8_pixels(x), tf.float32), y))  # gives them
    check_input_shape(model, ds.element_spec[0].shape[1:])
    return model, ds


def check_editable(model: Any, data: Any) -> None:
    """Raises unless the layer suites can take `model`: a Keras model that takes the data,
    with residual blocks to remove (`model_perturbations.block_names`)."""
    mp.block_names(_require_keras(model, data)[0])


def layers(model: keras.Model, data: Any, restricted_attention: bool = True,
           window: int = 1) -> Iterator[tuple[str, float]]:
    """layers/remove_block/I (and for ViT layers/remove_attention/I, layers/remove_mlp/I),
    then restricted attention: layers/local_attention/{all,late} with a `window`-patch
    neighbourhood and layers/self_cls/{late,last} (late = the second half of the blocks)."""
    model, ds = _require_keras(model, data)
    names = mp.block_names(model)
    vit = isinstance(model.get_layer(names[0]), TransformerBlock)
    parts = ["block", "attention", "mlp"] if vit else ["block"]
    for part in parts:
        for i in range(len(names)):
            yield f"layers/remove_{part}/{i}", accuracy(*predict(mp.remove_block(model, i, part),
                                                                 ds))
    if vit and restricted_attention:
        late = list(range(len(names) // 2, len(names)))
        variants = {"local_attention/all": (range(len(names)), "local"),
                    "local_attention/late": (late, "local"),
                    "self_cls/late": (late, "self_cls"),
                    "self_cls/last": ([len(names) - 1], "self_cls")}
        for name, (which, mode) in variants.items():
            fn = mp.restrict_attention(model, which, mode, window)
            yield f"layers/{name}", accuracy(*predict(fn, ds))


def layer_cka(model: keras.Model, data: Any, examples: int = CKA_EXAMPLES
              ) -> Iterator[tuple[str, Any]]:
    """cka/layers (names), cka/all and cka/cls (square matrices as nested lists)."""
    model, ds = _require_keras(model, data)
    images = []
    for x, _ in ds:
        images.append(np.asarray(x))
        if sum(len(i) for i in images) >= examples:
            break
    images = np.concatenate(images)[:examples]
    for tokens in ("all", "cls"):
        names, matrix = cka_lib.layer_cka(model, images, tokens)
        if tokens == "all":
            yield "cka/layers", names
        yield f"cka/{tokens}", matrix.tolist()
