"""Test helpers every capability uses (in the style of keras-nlp's `TestCase.run_layer_test`).

- `run_layer_test`: builds a layer, checks output shape, `get_config` lists exactly the
  constructor arguments, config round trip, and a `.keras` + SavedModel save/load round trip.
- `run_model_saving_test`: `.keras` and SavedModel round trips of a model, outputs equal.
- `tflite_parity`: converts a Keras model to TFLite, runs it with the on-device interpreter and
  returns the max abs difference to Keras.
"""

from __future__ import annotations

import inspect
import os
import tempfile
from typing import Any

import numpy as np

from tfkit.backend import keras, tf


def _as_numpy(x: Any) -> Any:
    return tf.nest.map_structure(lambda t: np.asarray(t), x)


def assert_allclose(a: Any, b: Any, atol: float = 1e-5) -> None:
    tf.nest.map_structure(lambda x, y: np.testing.assert_allclose(x, y, atol=atol, rtol=0),
                          _as_numpy(a), _as_numpy(b))


def run_layer_test(cls: type, init_kwargs: dict, input_data: Any,
                   expected_output_shape: tuple | None = None, atol: float = 1e-5,
                   run_saving: bool = True) -> keras.layers.Layer:
    """Instantiates `cls(**init_kwargs)`, calls it on `input_data`, and round-trips it."""
    layer = cls(**init_kwargs)
    output = layer(input_data)
    if expected_output_shape is not None:
        assert tuple(output.shape) == tuple(expected_output_shape), output.shape

    config = layer.get_config()
    own_init = "__init__" in cls.__dict__  # a layer without its own __init__ has no args
    signature = inspect.signature(cls.__init__).parameters if own_init else {}
    params = [p for p, spec in signature.items() if p != "self" and spec.kind
              not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)]
    for p in params:
        assert p in config, f"get_config() lacks constructor argument {p!r}"
        assert hasattr(layer, p), f"constructor argument {p!r} not stored as an attribute"
    clone = cls.from_config(config)
    assert clone.get_config() == config

    if run_saving:
        inputs = tf.nest.map_structure(
            lambda t: keras.Input(shape=t.shape[1:], dtype=t.dtype, batch_size=None), input_data)
        model = keras.Model(inputs, cls.from_config(config)(inputs))
        model.set_weights(_weights_after_build(model, layer))
        run_model_saving_test(model, input_data, atol=atol)
    return layer


def _weights_after_build(model: keras.Model, layer: keras.layers.Layer) -> list:
    weights = layer.get_weights()
    return weights if len(weights) == len(model.get_weights()) else model.get_weights()


def run_model_saving_test(model: keras.Model, input_data: Any, atol: float = 1e-5) -> None:
    """`.keras` and SavedModel round trips give the same outputs."""
    expected = model(input_data, training=False)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.keras")
        model.save(path)
        restored = keras.models.load_model(path)
        assert_allclose(restored(input_data, training=False), expected, atol)
        sm = os.path.join(d, "saved_model")
        tf.saved_model.save(model, sm)
        loaded = tf.saved_model.load(sm)
        assert_allclose(loaded(input_data, training=False), expected, atol)


def tflite_parity(model: keras.Model, input_data: np.ndarray) -> float:
    """Max abs difference between Keras and the TFLite interpreter, row by row at batch 1."""
    from tfkit.backend import tf as _tf

    converter = _tf.lite.TFLiteConverter.from_keras_model(model)
    flat = converter.convert()
    try:
        from tflite_runtime.interpreter import Interpreter
    except ImportError:  # pragma: no cover - tflite-runtime is a dependency
        Interpreter = _tf.lite.Interpreter
    interp = Interpreter(model_content=flat)
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], (1, *input_data.shape[1:]))
    interp.allocate_tensors()
    worst = 0.0
    expected = np.asarray(model(input_data, training=False))
    for i in range(len(input_data)):
        interp.set_tensor(inp["index"], input_data[i:i + 1].astype(inp["dtype"]))
        interp.invoke()
        got = interp.get_tensor(out["index"])
        worst = max(worst, float(np.max(np.abs(got - expected[i:i + 1]))))
    return worst
