"""What the robustness evaluators take: a model or predict_fn, and images with labels.

`prepare(model, data)` turns a Keras model (or any callable: float [0, 1] images -> logits or
probabilities) and an (images, labels) dataset or pair of arrays into a checked predict_fn that
returns float32 logits and float [0, 1] image batches with integer class ids:

    >>> model = lambda x: tf.reduce_mean(x, axis=[1, 2]) * [[1.0, -1.0]]  # 2 classes, logits
    >>> fn, ds = prepare(model, (np.zeros((5, 4, 4, 1), np.uint8), np.array([0, 1, 0, 1, 0])))
    >>> [(x.shape, x.dtype.name, y.dtype.name) for x, y in ds]
    [(TensorShape([5, 4, 4, 1]), 'float32', 'int64')]

uint8 images are scaled to [0, 1] (a model that scales pixels itself gets its 0..255 pixels),
[N, H, W] images get a channel axis, one-hot or [N, 1] labels become class ids, single examples
are batched, and probability outputs become log-probabilities (decided once per predict_fn).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tfkit.backend import keras, tf
from tfkit.errors import TfkitError
from tfkit.model_io import (  # re-exported
    takes_pixels,
    to_model_pixels,
    to_uint8_pixels,
    uint8_input,
)

__all__ = ["EvaluationInputError", "as_predict_fn", "as_dataset", "as_logits", "check_input_shape",
           "probability_tolerance", "takes_pixels", "to_uint8_pixels", "prepare", "BATCH_SIZE"]

PredictFn = Callable[[tf.Tensor], tf.Tensor]
BATCH_SIZE = 128  # evaluation batch: large enough for throughput, small for memory
PROBABILITY_TOLERANCE = 1e-3  # |row sum - 1| below which non-negative outputs are probabilities
_EPSILONS = {tf.float16: 2.0 ** -10, tf.bfloat16: 2.0 ** -7}  # coarser than float32's 1e-3


class EvaluationInputError(TfkitError, ValueError):
    """Data the evaluators cannot use: no examples, or images the model does not take."""


def _check_output_shape(shape: Any) -> None:
    shape = tf.TensorShape(shape)
    if shape.rank != 2 or shape[-1] == 1:
        raise EvaluationInputError(
            f"the model must output [batch, classes] logits or probabilities, it outputs shape "
            f"{shape} (a one-unit binary model: output [-z, z] or [1 - p, p])")


def probability_tolerance(dtype: tf.DType) -> float:
    """The |row sum - 1| below which non-negative outputs of `dtype` count as probabilities:
    1e-3, or 10 machine epsilons of a coarser float (float16 ~1e-2, bfloat16 ~8e-2)."""
    return max(PROBABILITY_TOLERANCE, 10 * _EPSILONS.get(tf.as_dtype(dtype), 0.0))


def _are_probabilities(outputs: tf.Tensor) -> tf.Tensor:
    tolerance = probability_tolerance(outputs.dtype)  # the output's own precision
    outputs = tf.cast(outputs, tf.float32)
    return tf.logical_and(
        tf.reduce_all(outputs >= 0.0),
        tf.reduce_all(tf.abs(tf.reduce_sum(outputs, -1) - 1.0) < tolerance))


def as_logits(outputs: tf.Tensor, probabilities: bool | None = None) -> tf.Tensor:
    """float32 logits: the outputs themselves, or log(p) for probabilities (a model ending in
    softmax). softmax(log p) = p, so accuracy, ECE and the attacks' cross-entropy are those of
    the model's own probabilities.

    Args:
        outputs: [batch, classes] logits or probabilities, any float dtype.
        probabilities: whether `outputs` are probabilities; None decides from this batch
            (every row non-negative and summing to 1 within `probability_tolerance`).
    """
    outputs = tf.convert_to_tensor(outputs)
    _check_output_shape(outputs.shape)
    if probabilities is None:
        probabilities = _are_probabilities(outputs)
    outputs = tf.cast(outputs, tf.float32)
    if probabilities is False:
        return outputs
    return tf.where(probabilities, tf.math.log(tf.maximum(outputs, 1e-30)), outputs)


def _one_output(outputs: Any) -> tf.Tensor:
    """The model's one output: a dict or list of one tensor is unwrapped (e.g. a functional
    model built with `outputs={"logits": ...}`); several outputs are an EvaluationInputError."""
    if isinstance(outputs, dict):
        names, outputs = f" ({', '.join(map(str, outputs))})", list(outputs.values())
    else:
        names = ""
    if isinstance(outputs, (list, tuple)) and all(
            getattr(getattr(o, "shape", None), "__len__", None) and len(o.shape) >= 2
            or isinstance(o, dict) for o in outputs):  # tensors, not rows of numbers
        if len(outputs) != 1:
            raise EvaluationInputError(
                f"the model has {len(outputs)} outputs{names}; the evaluators need one "
                "[batch, classes] output of logits or probabilities: pass e.g. "
                "`lambda x: model(x)[0]`")
        outputs = outputs[0]
    return tf.convert_to_tensor(outputs)


class _LogitsReader:
    """`as_logits` that decides probabilities-vs-logits on the first batch it sees eagerly
    and keeps that reading, so one evaluation never mixes the two."""

    def __init__(self) -> None:
        self.probabilities: bool | None = None

    def __call__(self, outputs: tf.Tensor) -> tf.Tensor:
        outputs = _one_output(outputs)
        if self.probabilities is None and tf.executing_eagerly():
            _check_output_shape(outputs.shape)
            self.probabilities = bool(_are_probabilities(outputs))
        return as_logits(outputs, self.probabilities)


def as_predict_fn(model: keras.Model | PredictFn, pixels: bool = False) -> PredictFn:
    """A images -> logits function for a Keras model (traced, inference mode) or a callable.
    Probability outputs (rows of non-negative values summing to 1) become log-probabilities;
    the first batch decides which the outputs are, for every later call. `pixels`: the Keras
    model is called on x * 255 (a `takes_pixels` model given [0, 1] images)."""
    read = _LogitsReader()
    if isinstance(model, keras.Model):
        shape = getattr(model, "output_shape", None)  # None: a model never called yet
        if shape is not None and not isinstance(shape, (list, dict)):  # several: at call
            _check_output_shape(shape)
        if pixels:
            traced = tf.function(lambda x: model(to_model_pixels(model, x), training=False),
                                 reduce_retracing=True)
        else:
            traced = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        return lambda x: read(traced(x))
    if not callable(model):
        raise TypeError(f"expected a Keras model or a predict_fn, got {type(model).__name__}")
    return lambda x: read(model(x))


def _is_single_example(spec: tuple[tf.TensorSpec, tf.TensorSpec]) -> bool:
    """A dataset element that is one example: a scalar label, one [H, W] grayscale image, or
    one [H, W, 1 or 3] image with a [1] (keras.datasets) or one-hot label. [B, H, W] grayscale
    batches are not, also of width 1 or 3 when `.batch()` left both batch sizes unknown and
    the height known ([None, H, 3] with [None] labels)."""
    images, labels = spec[0].shape, spec[1].shape
    if labels.rank == 0 or images.rank == 2:
        return True
    batched = images.rank == 3 and images[0] is None and labels[0] is None \
        and images[1] is not None
    return (images.rank == 3 and images[-1] in (1, 3) and labels.rank == 1
            and not batched)


def _class_ids(y: tf.Tensor) -> tf.Tensor:
    """[B, K] one-hot labels -> argmax, [B, 1] (keras.datasets) -> [B]; a width unknown until
    run time is read then."""
    width = y.shape[-1]
    if width is not None:
        return tf.argmax(y, -1) if width > 1 else y[:, 0]
    return tf.cond(tf.shape(y)[-1] == 1, lambda: tf.cast(y[:, 0], tf.int64),
                   lambda: tf.argmax(y, -1))


def as_dataset(data: tf.data.Dataset | tuple[np.ndarray, np.ndarray],
               batch_size: int = BATCH_SIZE, scale_uint8: bool = True) -> tf.data.Dataset:
    """(images, labels) batches of float images: uint8 images (arrays or a dataset's) are
    scaled to [0, 1] (unless `scale_uint8` is False), [N, H, W] images get a channel axis,
    one-hot labels become class ids, and a dataset of single examples is batched."""
    scale = 255.0 if scale_uint8 else 1.0
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        if not (isinstance(spec, tuple) and len(spec) == 2):
            raise EvaluationInputError(f"the dataset must yield (images, labels) pairs, it "
                                       f"yields {spec}")
        if data.cardinality() == tf.data.INFINITE_CARDINALITY:
            raise EvaluationInputError("the dataset is endless (a .repeat()?): the evaluators "
                                       "read it to the end; pass ds.take(N) or a finite one")
        if _is_single_example(spec):  # batch them like arrays
            data = data.batch(batch_size)

        def to_float(x, y):
            x = tf.cast(x, tf.float32) / scale if x.dtype == tf.uint8 else tf.cast(x, tf.float32)
            if y.shape.rank == 2:  # one-hot -> class ids; [B, 1] (keras.datasets) -> [B]
                y = _class_ids(y)
            return (x[..., None] if x.shape.rank == 3 else x), y

        return data.map(to_float)
    x, y = data
    x, y = np.asarray(x), np.asarray(y)
    y = np.argmax(y, -1) if y.ndim == 2 and y.shape[1] != 1 else y.reshape(-1)  # one-hot: ids
    if len(x) == 0:
        raise EvaluationInputError("the data has no examples")
    if len(x) != len(y):
        raise EvaluationInputError(f"{len(x)} images but {len(y)} labels")
    x = x.astype(np.float32) / scale if x.dtype == np.uint8 else x.astype(np.float32)
    x = x[..., None] if x.ndim == 3 else x
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)


def check_input_shape(model: Any, image_shape: Sequence[int | None]) -> None:
    """Raises EvaluationInputError when `model.input_shape` (a Keras model's, or a loaded
    SavedModel's predict_fn's) does not accept images of `image_shape` ([H, W, C])."""
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, list):
        shape = shape[0]
    if not shape:
        return
    want, have = tuple(shape[1:]), tuple(image_shape)
    if len(want) != len(have) or any(w is not None and h is not None and w != h
                                     for w, h in zip(want, have, strict=True)):
        raise EvaluationInputError(f"the model expects images of shape {want}, the data has "
                                   f"{have}")


def _uint8_images(data: Any) -> bool:
    if isinstance(data, tf.data.Dataset):
        return data.element_spec[0].dtype == tf.uint8
    return np.asarray(data[0]).dtype == np.uint8


def prepare(model: keras.Model | PredictFn, data: Any) -> tuple[PredictFn, tf.data.Dataset]:
    """(as_predict_fn(model), as_dataset(data)) after checking the images fit the model. uint8
    images for a model that scales pixels itself (`takes_pixels`) reach it as 0..255 pixels
    (the evaluators still perturb [0, 1] images); so do float [0, 1] images for a model whose
    Input is uint8 (cast as they are, they would all be 0 or 1)."""
    ds = as_dataset(data)
    check_input_shape(model, ds.element_spec[0].shape[1:])
    pixels = takes_pixels(model) and (_uint8_images(data) or uint8_input(model))
    return as_predict_fn(model, pixels=pixels), ds
