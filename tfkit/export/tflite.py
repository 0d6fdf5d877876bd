"""TFLite export in four variants, and a runner on the on-device interpreter.

Variants (`VARIANTS`):
    float32       the plain conversion.
    float16       weights stored as float16 (half the size), computed in float32.
    dynamic_int8  dynamic-range quantization: int8 weights, activations quantized on the fly.
    int8          full-integer quantization calibrated on training images; int8 input and
                  output (input = uint8 pixel - 128), for integer-only accelerators. Top-k
                  MLP activations are rewritten as a threshold (see `integer_friendly`).

`TFLiteModel` runs a `.tflite` file with `tflite_runtime` (the on-device interpreter package),
falling back to `tf.lite.Interpreter`, at batch 1, XNNPACK on or off. It verifies the file
before the native interpreter sees it, so a corrupted or truncated file raises
`TFLiteModelError` instead of crashing the process. It is the one interpreter wrapper of tfkit
(`tfkit.sparsity.tflite` predicts and times its variants with it too).

Example:
    >>> from tfkit.models import ViT
    >>> model = ViT(image_size=8, patch_size=4, num_layers=1, hidden_dim=16, num_heads=2,
    ...             intermediate_dim=32, num_classes=3, channels=1)
    >>> images = np.random.rand(8, 8, 8, 1).astype("float32")  # float32 [0, 1], as in training
    >>> flat = convert(model, "int8", calibration=images)
    >>> TFLiteModel(flat).predict(images).dtype   # dequantized float32 outputs
    dtype('float32')
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tfkit.export.errors import ExportError, TFLiteModelError

__all__ = ["VARIANTS", "check_float32", "clone_with", "convert", "integer_friendly",
           "TFLiteModel", "interpreter_class", "make_interpreter"]

VARIANTS = ("float32", "float16", "dynamic_int8", "int8")


def _threshold_top_k_class() -> type:
    from tfkit.backend import keras, tf

    class ThresholdTopK(keras.layers.Layer):
        """Top-k as `x * (x >= k-th largest)`: int8-quantizable (no ONE_HOT); ties all kept."""

        def __init__(self, k: int, **kwargs):
            super().__init__(**kwargs)
            self.k = int(k)

        def call(self, x: tf.Tensor) -> tf.Tensor:
            width = x.shape[-1]
            if width is not None and self.k >= width:  # as TopKActivation: the identity
                return x
            values, _ = tf.math.top_k(x, k=self.k, sorted=True)
            return tf.where(x >= values[..., -1:], x, tf.zeros_like(x))

    return ThresholdTopK


def integer_friendly(model: Any) -> Any:
    """A copy of `model` whose Top-k activations survive full-integer quantization.

    `tfkit.layers.TopKActivation` builds an exact-k mask (ONE_HOT when this was measured, a
    SCATTER_ND now); int8 TFLite got the ONE_HOT form wrong (rmse ~127 quantization steps,
    accuracy collapsing to chance), and a float mask has no int8 kernel to trust. The copy
    keeps entries >= the k-th largest value instead: the same output except that ties at the
    k-th value all survive. Both the Top-k of `FeedForward` layers (also inside blocks) and
    the top-level `TopKActivation` layers of a functional or Sequential model are rewritten
    (not those nested in an inner model). Models without Top-k are returned unchanged.
    """
    from tfkit.layers import TopKActivation

    holders = [m for m in model.submodules if getattr(m, "top_k_layer", None) is not None]
    bare = [layer for layer in getattr(model, "layers", []) if isinstance(layer, TopKActivation)]
    if not holders and not bare:
        return model
    threshold_top_k = _threshold_top_k_class()
    if bare:  # a user's Sequential / functional model with TopKActivation layers of its own
        copy = clone_with(model, lambda layer: threshold_top_k
                          if isinstance(layer, TopKActivation) else None)
    else:
        from tfkit.backend import keras

        try:
            copy = model.__class__.from_config(model.get_config())
        except (TypeError, ValueError, NotImplementedError):
            copy = keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
    for layer in copy.submodules:
        if getattr(layer, "top_k_layer", None) is not None:
            layer.top_k_layer = threshold_top_k(layer.top_k_layer.k, name="top_k")
    return copy


def clone_with(model: Any, swap: Callable[[Any], type | None]) -> Any:
    """A weight-equal clone of a functional or Sequential `model` whose layers are rebuilt from
    their configs, each as the class `swap(layer)` returns (None: its own class); an
    ExportError for a subclassed model, which has no graph of layers to clone."""
    from tfkit.backend import keras

    def clone(layer: Any) -> Any:
        return (swap(layer) or layer.__class__).from_config(layer.get_config())

    try:
        copy = keras.models.clone_model(model, clone_function=clone)
    except ValueError as e:  # "only supported for Sequential models or Functional models"
        raise ExportError(f"{type(model).__name__} {model.name!r} is subclassed; this copy "
                          "needs a functional or Sequential model (keras.Model(inputs, "
                          f"outputs)): build it functionally ({str(e).splitlines()[0]})"
                          ) from None
    copy.set_weights(model.get_weights())
    return copy


def check_float32(model: Any) -> None:
    """An ExportError unless `model` computes in float32: TFLite converts float32 graphs (a
    mixed-precision model's float16 MatMul / BiasAdd / TopKV2 have no builtins)."""
    half = sorted({layer.compute_dtype for layer in model.submodules
                   if hasattr(layer, "compute_dtype")
                   and layer.compute_dtype in ("float16", "bfloat16")})
    if half:
        raise ExportError(f"model {model.name!r} computes in {', '.join(half)} (a mixed "
                          "precision policy); TFLite converts float32 graphs: rebuild the model "
                          "under keras.mixed_precision.set_global_policy('float32'), copy the "
                          "weights with set_weights(model.get_weights()) and convert that")


def _fixed_size(model: Any, input_shape: tuple[int, ...] | None) -> Any:
    """`model` itself, or for a model whose input has free dimensions (a ResNet takes any
    image size) a model that takes exactly `input_shape` (without the batch axis)."""
    if None not in tuple(model.input_shape[1:]):
        return model
    if input_shape is None:
        raise ExportError(f"the model's input shape {list(model.input_shape[1:])} has free "
                          "dimensions; pass input_shape without the batch axis: (height, "
                          "width, channels) for images, (length,) for token ids")
    from tfkit.backend import keras

    inputs = keras.Input(tuple(int(d) for d in input_shape), dtype=model.inputs[0].dtype)
    return keras.Model(inputs, model(inputs), name=model.name)


def convert(model: Any, variant: str, calibration: np.ndarray | None = None,
            input_shape: tuple[int, ...] | None = None) -> bytes:
    """Converts a Keras model to TFLite `variant`; `calibration` feeds int8 (model-domain
    inputs, e.g. float32 [0, 1] images, ~100-500 training examples); `input_shape` (without
    the batch axis) fixes the size of a model that takes any size."""
    from tfkit.backend import tf

    if variant not in VARIANTS:
        raise ExportError(f"unknown TFLite variant {variant!r}; choose from {VARIANTS}")
    check_float32(model)
    if variant == "int8":
        model = integer_friendly(model)
    model = _fixed_size(model, input_shape)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if variant != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if variant == "int8":
        if calibration is None or len(calibration) == 0:
            raise ExportError("full-integer int8 needs calibration data (training examples)")
        calibration = _calibration(model, calibration)

        def representative() -> Any:
            for i in range(len(calibration)):
                yield [calibration[i:i + 1]]

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    try:
        with warnings.catch_warnings():  # int8: "Statistics for quantized inputs ..." is moot,
            warnings.simplefilter("ignore", UserWarning)  # the input scale comes from calibration
            return converter.convert()
    except Exception as e:  # the converter raises ConverterError, ValueError, RuntimeError
        raise ExportError(f"TFLite {variant} conversion failed: {str(e).splitlines()[0]}"
                          ) from None


def _calibration(model: Any, calibration: Any) -> np.ndarray:
    """`calibration` as the model's input takes it: floats cast to the Input's float dtype
    (`images / 255.0` is float64), a channel axis added to grayscale [N, H, W]; an
    ExportError, before the converter's own message, for another shape or for integers a float
    Input would read unscaled (uint8 pixels)."""
    calibration = np.asarray(calibration)
    spec = model.inputs[0]
    want = [int(d) for d in spec.shape[1:]]
    dtype = np.dtype(spec.dtype.as_numpy_dtype)
    expected = f"{dtype.name} [N, {', '.join(map(str, want))}]"
    if np.issubdtype(dtype, np.floating):
        dtype_ok = np.issubdtype(calibration.dtype, np.floating)
    else:  # an integer Input (uint8 pixels, token ids): exactly its dtype
        dtype_ok = calibration.dtype == dtype
    if not dtype_ok:
        raise ExportError(f"int8 got {calibration.dtype} calibration; the model takes {expected}"
                          " in its own input domain (e.g. uint8 images / 255.0 for a model "
                          "trained on [0, 1] images, the pixels for a uint8 Input)")
    if want[-1:] == [1] and list(calibration.shape[1:]) == want[:-1]:  # grayscale [N, H, W]
        calibration = calibration[..., None]
    if list(calibration.shape[1:]) != want:
        raise ExportError(f"int8 got calibration of shape {list(calibration.shape)}; the model "
                          f"takes {expected}")
    return calibration.astype(dtype, copy=False)


def interpreter_class() -> Callable[..., Any]:
    """`tflite_runtime.interpreter.Interpreter` where installed, else `tf.lite.Interpreter`."""
    return _runtime()[0]


def _runtime() -> tuple[Callable[..., Any], Any]:
    """The interpreter class and its `OpResolverType` enum, from tflite_runtime if installed."""
    try:
        from tflite_runtime.interpreter import Interpreter, OpResolverType
    except ImportError:  # tflite-runtime has no wheel for this platform
        from tfkit.backend import tf

        Interpreter, OpResolverType = tf.lite.Interpreter, tf.lite.experimental.OpResolverType
    return Interpreter, OpResolverType


def make_interpreter(content: bytes, num_threads: int | None = None, xnnpack: bool = True
                     ) -> Any:
    """An interpreter for a flatbuffer, as a device creates it (no Keras in the loop).

    Args:
        content: the `.tflite` bytes.
        num_threads: interpreter threads (None = the runtime's default).
        xnnpack: True applies the default XNNPACK delegate (the runtime's default); False runs
            TFLite's builtin kernels only (e.g. its sparse FULLY_CONNECTED kernels).
    """
    Interpreter, OpResolverType = _runtime()
    resolver = (OpResolverType.AUTO if xnnpack
                else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    return Interpreter(model_content=content, num_threads=num_threads,
                       experimental_op_resolver_type=resolver)


def verify_flatbuffer(content: bytes, origin: str) -> None:
    """Parses the whole flatbuffer in Python; raises `TFLiteModelError` if it is malformed.

    The native interpreter trusts the file's offsets and can crash on a corrupted one.
    """
    from tensorflow.lite.python import schema_py_generated as schema

    if len(content) < 8 or content[4:8] != b"TFL3":
        raise TFLiteModelError(f"{origin} is not a TFLite model (no 'TFL3' identifier; "
                               f"{len(content)} bytes)")
    try:
        parsed = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(content, 0))
    except Exception as e:  # struct.error / IndexError on out-of-range offsets
        raise TFLiteModelError(f"{origin} is corrupted or truncated ({type(e).__name__}: "
                               f"{str(e)[:80]}); re-export it") from None
    if not parsed.subgraphs:
        raise TFLiteModelError(f"{origin} has no subgraph; re-export it")


def _quantization(detail: dict) -> tuple[float, int]:
    scale, zero_point = detail["quantization"]
    return float(scale), int(zero_point)


class TFLiteModel:
    """A `.tflite` model on the on-device interpreter, with one input and one output.

    Args:
        model: a `.tflite` path or its bytes.
        num_threads: interpreter threads (None = the runtime's default).
        xnnpack: apply the default XNNPACK delegate (False: builtin kernels only).

    Raises:
        TFLiteModelError: the file is missing, corrupted, or has several inputs/outputs.
    """

    def __init__(self, model: str | os.PathLike | bytes, num_threads: int | None = None,
                 xnnpack: bool = True):
        if isinstance(model, bytes):
            content, self.origin = model, "the TFLite model"
        else:
            path = Path(model)
            if not path.is_file():
                raise TFLiteModelError(f"{path} does not exist")
            content, self.origin = path.read_bytes(), str(path)
        verify_flatbuffer(content, self.origin)
        self.size_bytes = len(content)
        try:
            self.interpreter = make_interpreter(content, num_threads, xnnpack)
            self.interpreter.allocate_tensors()
            inputs = self.interpreter.get_input_details()
            self.batch_size = 1  # rows per invoke
            if len(inputs) == 1 and inputs[0]["shape"][0] != 1:
                signature = inputs[0].get("shape_signature", inputs[0]["shape"])
                if len(signature) and signature[0] == -1:  # a dynamic batch: run at batch 1
                    self.interpreter.resize_tensor_input(inputs[0]["index"],
                                                         (1, *inputs[0]["shape"][1:]))
                    self.interpreter.allocate_tensors()
                elif len(signature):  # converted at a static batch (shapes folded for it)
                    self.batch_size = max(1, int(inputs[0]["shape"][0]))
        except (ValueError, RuntimeError) as e:
            raise TFLiteModelError(f"{self.origin} cannot run on this interpreter: "
                                   f"{str(e).strip().splitlines()[0]}") from None
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise TFLiteModelError(f"{self.origin} has {len(inputs)} inputs and {len(outputs)} "
                                   "outputs; TFLiteModel runs single-input single-output models")
        self._input, self._output = inputs[0], outputs[0]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The input shape without the batch axis."""
        return tuple(int(d) for d in self._input["shape"][1:])

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self._input["dtype"])

    @property
    def input_quantization(self) -> tuple[float, int]:
        """(scale, zero_point) of the input tensor; (0.0, 0) for an unquantized input."""
        return _quantization(self._input)

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        """Model-domain floats → the input tensor (quantized for int8); the input dtype itself
        passes through; other dtypes (uint8 pixels) are refused: a cast would wrap or skip
        the model's scaling silently."""
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.floating) and x.dtype != self.input_dtype:
            raise TFLiteModelError(
                f"{self.origin} got {x.dtype} inputs; pass model-domain floats (e.g. uint8 images "
                f"/ 255.0) or {self.input_dtype} values already in the model's input format")
        scale, zero_point = _quantization(self._input)
        if scale and np.issubdtype(x.dtype, np.floating):
            info = np.iinfo(self.input_dtype)
            q = np.round(np.asarray(x, np.float64) / scale + zero_point)
            return np.clip(q, info.min, info.max).astype(self.input_dtype)
        return x.astype(self.input_dtype)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Runs each row of `x` (model-domain values, e.g. float32 [0, 1] images) at batch 1
        (a model converted at a static batch b > 1: in groups of b, the last one padded);
        quantized inputs are quantized here and outputs dequantized to float32. Integer `x` is
        taken only in the model's own input dtype (already quantized); other integers, e.g.
        uint8 pixels, raise `TFLiteModelError`."""
        x = np.asarray(x)
        if tuple(x.shape[1:]) != self.input_shape:
            want = ", ".join(map(str, self.input_shape))
            raise TFLiteModelError(f"{self.origin} takes inputs of shape [batch, {want}] but got "
                                   f"{list(x.shape)}; is this the model exported for this data?")
        q = self._prepare(x)
        out_scale, out_zero = _quantization(self._output)
        if not len(q):  # no rows: no outputs, in the output's shape
            return np.zeros((0, *self._output["shape"][1:]), np.float32)
        results = []
        for i in range(0, len(q), self.batch_size):
            rows = q[i:i + self.batch_size]
            self.interpreter.set_tensor(self._input["index"], self._padded(rows))
            self.interpreter.invoke()
            y = self.interpreter.get_tensor(self._output["index"])[:len(rows)]
            results.append((y.astype(np.float32) - out_zero) * out_scale if out_scale else y)
        return np.concatenate(results).astype(np.float32)

    def invoke(self, x: np.ndarray | None = None) -> None:
        """One batch-1 `invoke()` (batch b for a model converted at a static batch b), after
        setting the first row(s) of `x` as input if given (for timing: set the input once,
        then call `invoke()` repeatedly)."""
        if x is not None:
            rows = self._prepare(np.asarray(x)[:self.batch_size])
            self.interpreter.set_tensor(self._input["index"], self._padded(rows))
        self.interpreter.invoke()

    def _padded(self, rows: np.ndarray) -> np.ndarray:
        """`rows` filled up to the interpreter's batch by repeating the last row."""
        missing = self.batch_size - len(rows)
        return np.concatenate([rows, np.repeat(rows[-1:], missing, axis=0)]) if missing else rows
