"""Activation sparsity: the fraction of nonzero MLP activations per layer ("Lazy Neuron").

For every `tfkit.layers.FeedForward` in a model (top-level, inside a `TransformerBlock`, or
inside a keras-nlp block made Top-k by `tfkit.sparsity.TopKTransformerEncoder`), the hidden
activation `act(Kᵀx)` of each token is probed and its nonzero entries counted. Padding tokens
(id `pad_id` of a token-id input) are excluded, as in the paper.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from tfkit.backend import keras, tf
from tfkit.errors import TfkitError
from tfkit.layers import FeedForward

__all__ = ["MeasureError", "feed_forward_layers", "nonzero_fraction", "dead_fraction",
           "as_batches"]


class MeasureError(TfkitError, ValueError):
    """The data cannot be measured as asked (e.g. padding that does not fit the activations)."""


def feed_forward_layers(model: keras.Model) -> list[tuple[str, FeedForward]]:
    """Every `FeedForward` reachable from `model`, in layer order, named after its owner.

    A FeedForward that is itself a layer of `model` keeps its name; one nested inside a block
    (e.g. `block_3`) is named after that block.
    """
    found: list[tuple[str, FeedForward]] = []
    seen: set[int] = set()
    for layer in model.layers:
        nested = [layer] if isinstance(layer, FeedForward) else [
            m for m in layer.submodules if isinstance(m, FeedForward)]
        for ff in nested:
            if id(ff) in seen:
                continue
            seen.add(id(ff))
            found.append((layer.name if len(nested) == 1 else f"{layer.name}/{ff.name}", ff))
    return found


@contextlib.contextmanager
def probe_activations(layers: list[tuple[str, FeedForward]],
                      on_activation: Callable[[str, tf.Tensor], None]) -> Iterator[None]:
    """While active, each eager FeedForward call passes `(name, act(Kᵀx))` to `on_activation`.

    The probe re-computes `ff.intermediate(x)` on the FeedForward's input (the same activation
    the layer uses) and leaves the layer's output untouched; the original `call` is restored on
    exit.
    """
    probed = []
    for name, ff in layers:
        original = ff.call

        def probe(x, *args, _name=name, _ff=ff, _original=original, **kwargs):
            on_activation(_name, _ff.intermediate(x))
            return _original(x, *args, **kwargs)

        probed.append(ff)
        object.__setattr__(ff, "call", probe)  # instance-level; bypasses Keras tracking
    try:
        yield
    finally:
        for ff in probed:
            object.__delattr__(ff, "call")


def as_batches(data: Any, batch_size: int = 128) -> Iterable[Any]:
    """Inputs only, batched: accepts arrays, dicts of arrays (keras-nlp style inputs), `(x, y)`
    tuples of those, or a `tf.data` dataset."""
    if isinstance(data, tf.data.Dataset):
        for item in data:
            yield item[0] if isinstance(item, (tuple, list)) else item
        return
    if isinstance(data, (tuple, list)):
        data = data[0]
    if isinstance(data, dict):
        size = len(next(iter(data.values()))) if data else 0
        for i in range(0, size, batch_size):
            yield {key: value[i:i + batch_size] for key, value in data.items()}
        return
    for i in range(0, len(data), batch_size):
        yield data[i:i + batch_size]


def _token_mask(x: Any, pad_id: int | None) -> np.ndarray | None:
    """[batch, length] True at real tokens (None: every position counts): `token ids != pad_id`,
    and for a dict input (keras-nlp style) also its `padding_mask` where it has one."""
    if not isinstance(x, dict):
        return None if pad_id is None else np.asarray(x) != pad_id
    masks = []
    if "padding_mask" in x:
        masks.append(np.asarray(x["padding_mask"]).astype(bool))
    if pad_id is not None:
        if "token_ids" not in x:
            raise MeasureError(f"pad_id={pad_id} needs the token ids, but the dict input has "
                               f"only {sorted(x)}; pass a \"token_ids\" entry or pad_id=None "
                               "with a \"padding_mask\"")
        masks.append(np.asarray(x["token_ids"]) != pad_id)
    return np.logical_and.reduce(masks) if masks else None


def _no_tokens(what: str) -> MeasureError:
    return MeasureError(f"no tokens to measure: the data is empty, max_batches is 0, or every "
                        f"position is padding; {what} needs at least one real token")


def _measured_layers(model: keras.Model) -> list[tuple[str, FeedForward]]:
    """`feed_forward_layers(model)`, refusing a model without any."""
    layers = feed_forward_layers(model)
    if not layers:
        raise ValueError(f"model {model.name!r} has no FeedForward layers to measure")
    return layers


def _pad_id(model: keras.Model, pad_id: int | None) -> int | None:
    """`pad_id`, else `model.pad_id` for a model with token-id input (None: count all)."""
    if pad_id is None and model.inputs and model.inputs[0].dtype.is_integer:
        pad_id = getattr(model, "pad_id", None)
    return pad_id


def _real_tokens(values: np.ndarray, mask: np.ndarray | None, name: str) -> np.ndarray:
    """`values` [batch, length, ...] at the non-padding positions of `mask` [batch, length]
    ([tokens, ...]); all of them, flattened, without a mask."""
    if mask is None:
        return values.reshape(-1, *values.shape[2:]) if values.ndim > 2 else values.ravel()
    if values.shape[:2] != mask.shape:
        raise MeasureError(
            f"{name}: activations cover positions {list(values.shape[:2])} but the token ids "
            f"{list(mask.shape)}, so padding cannot be excluded (the model adds positions, "
            "e.g. a soft prompt); pass pad_id=None to a model without a pad_id (every position "
            "counts) or measure the model without the added positions")
    return values[mask]


def nonzero_fraction(model: keras.Model, data: Any, pad_id: int | None = None,
                     max_batches: int | None = None, batch_size: int = 128) -> dict[str, float]:
    """Mean fraction of nonzero MLP activations per token, for each FeedForward in `model`.

    Args:
        model: a Keras model containing `FeedForward` layers (tfkit ViT, DecoderLM, ...).
        data: inputs as an array, a dict of arrays (keras-nlp style `{"token_ids",
            "padding_mask"}`), an `(x, y)` tuple of those, or a `tf.data` dataset of x or
            (x, y).
        pad_id: token id to exclude (defaults to `model.pad_id` for models with token-id input,
            e.g. `DecoderLM`); `None` counts every position, except that the positions a dict
            input's `padding_mask` marks False are always excluded.
        max_batches: stop after this many batches (None = all of `data`).
        batch_size: batch size used when `data` is an array.

    Returns:
        {layer name: nonzero fraction in [0, 1]}, in layer order.

    Raises:
        MeasureError: no token was measured (empty data, `max_batches=0`, all padding), or the
            padding does not fit the activations.

    Example:
        >>> from tfkit.models import ViT
        >>> vit = ViT(image_size=8, patch_size=4, num_layers=2, hidden_dim=16, num_heads=2,
        ...           intermediate_dim=32, channels=1, activation="relu", top_k=4)
        >>> fractions = nonzero_fraction(vit, np.random.rand(4, 8, 8, 1).astype("float32"))
        >>> all(f <= 4 / 32 for f in fractions.values())
        True
    """
    layers = _measured_layers(model)
    pad_id = _pad_id(model, pad_id)
    counts: dict[str, list] = {name: [] for name, _ in layers}
    nonzeros = {name: 0.0 for name, _ in layers}
    tokens = {name: 0.0 for name, _ in layers}
    def count(name: str, h: tf.Tensor) -> None:  # nonzero entries per token
        counts[name].append(tf.math.count_nonzero(h, axis=-1, dtype=tf.float32).numpy())

    with probe_activations(layers, count):
        for i, x in enumerate(as_batches(data, batch_size)):
            if max_batches is not None and i >= max_batches:
                break
            model(x, training=False)
            mask = _token_mask(x, pad_id)
            for name, _ in layers:
                per_token = _real_tokens(counts[name].pop(), mask, name)
                nonzeros[name] += float(per_token.sum())
                tokens[name] += float(per_token.size)
    if not any(tokens.values()):
        raise _no_tokens("nonzero_fraction")
    return {name: nonzeros[name] / tokens[name] / ff.intermediate_dim for name, ff in layers}


def dead_fraction(model: keras.Model, data: Any, batch_size: int = 128,
                  pad_id: int | None = None) -> dict[str, float]:
    """Per FeedForward, the fraction of MLP neurons never active on any non-padding token of
    `data`.

    Dead ReLUs lower `nonzero_fraction` without any per-token laziness; dividing the nonzero
    fraction by `1 - dead` gives how often the live neurons fire.

    Args:
        model: a Keras model containing `FeedForward` layers.
        data: inputs as for `nonzero_fraction` (array, `(x, y)` tuple or `tf.data` dataset).
        batch_size: batch size used when `data` is an array.
        pad_id: token id to exclude, as in `nonzero_fraction` (defaults to `model.pad_id` for
            models with token-id input).

    Returns:
        {layer name: dead fraction in [0, 1]}, in layer order.

    Example:
        >>> from tfkit.models import ViT
        >>> vit = ViT(image_size=8, patch_size=4, num_layers=1, hidden_dim=16, num_heads=2,
        ...           intermediate_dim=32, channels=1, activation="relu")
        >>> dead = dead_fraction(vit, np.random.rand(4, 8, 8, 1).astype("float32"))
        >>> len(dead), all(0.0 <= f <= 1.0 for f in dead.values())  # one MLP layer
        (1, True)
    """
    layers = _measured_layers(model)
    pad_id = _pad_id(model, pad_id)
    active = {name: np.zeros(ff.intermediate_dim, bool) for name, ff in layers}
    fired: dict[str, list] = {name: [] for name, _ in layers}
    measured = 0

    def seen(name: str, h: tf.Tensor) -> None:  # which neurons are nonzero, per position
        fired[name].append(tf.not_equal(h, 0).numpy())

    with probe_activations(layers, seen):
        for x in as_batches(data, batch_size):
            model(x, training=False)
            mask = _token_mask(x, pad_id)
            for name, _ in layers:
                h = fired[name].pop()  # [batch, (length,) d_ff]
                real = _real_tokens(h, mask, name).reshape(-1, h.shape[-1])
                active[name] |= real.any(axis=0)
                measured += len(real)
    if not measured:
        raise _no_tokens("dead_fraction")
    return {name: 1.0 - float(active[name].mean()) for name, _ in layers}
