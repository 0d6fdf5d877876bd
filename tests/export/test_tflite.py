"""TFLite export: four variants, parity table, on-device runtime, clear errors on bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tfkit import cli
from tfkit.datasets import load
from tfkit.export import VARIANTS, ExportError, TFLiteModel, TFLiteModelError
from tfkit.export.cli import export_tflite


@pytest.fixture(scope="module")
def tflite_out(vit_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("tflite")
    assert export_tflite(vit_run, out) == 0
    return out


def test_writes_four_variants_and_parity_table(tflite_out):
    report = json.loads((tflite_out / "parity.json").read_text())
    assert set(report["variants"]) == set(VARIANTS)
    for variant in VARIANTS:
        assert (tflite_out / f"topk_{variant}.tflite").exists()
    table = (tflite_out / "parity.md").read_text()
    assert all(v in table for v in VARIANTS) and "max abs diff" in table
    assert "tfkit export tflite" in (tflite_out / "MODEL_CARD.md").read_text()
    v = report["variants"]
    assert v["float32"]["max_abs_diff"] <= 1e-4  # float32 TFLite is Keras up to rounding
    assert v["float32"]["accuracy"] == pytest.approx(report["keras"]["accuracy"])
    assert v["float16"]["size_bytes"] < v["float32"]["size_bytes"]
    assert v["int8"]["size_bytes"] < v["float32"]["size_bytes"]
    # Full-integer int8 tracks Keras (Top-k rewritten as a threshold, see integer_friendly).
    assert v["int8"]["agreement"] >= 0.9
    assert report["targets"]["dynamic_int8_accuracy_within_1_point"] == (
        v["dynamic_int8"]["accuracy_drop_points"] <= 1.0)


def test_recorded_accuracy_reproduces_on_the_runtime(tflite_out):
    report = json.loads((tflite_out / "parity.json").read_text())
    test = load("digits").test
    x = test.x[:report["examples"], :, :, None].astype(np.float32) / 255.0
    model = TFLiteModel(tflite_out / "topk_int8.tflite")
    assert model.input_dtype == np.int8 and model.input_shape == (8, 8, 1)
    accuracy = float(np.mean(model.predict(x).argmax(-1) == test.y[:len(x)]))
    assert accuracy == pytest.approx(report["variants"]["int8"]["accuracy"])


def test_integer_friendly_copy_computes_the_same_function(vit_run):
    from tfkit.export import integer_friendly
    from tfkit.runs import RunDir

    model = RunDir(vit_run, log=None).load_model("topk")
    copy = integer_friendly(model)
    assert copy is not model
    assert all(type(m).__name__ == "ThresholdTopK" for m in copy.submodules
               if m.name == "top_k")
    x = load("digits").test.x[:64, :, :, None].astype(np.float32) / 255.0
    np.testing.assert_allclose(copy(x).numpy(), model(x).numpy(), atol=1e-5)


def test_corrupted_truncated_and_foreign_files_raise(tflite_out, tmp_path):
    good = (tflite_out / "topk_float32.tflite").read_bytes()
    flipped = good[:200] + bytes(b ^ 0x5A for b in good[200:1200]) + good[1200:]
    cases = {"flipped": flipped, "truncated": good[: len(good) // 2],
             "text": b"not a model at all" * 10, "empty": b""}
    for name, content in cases.items():
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(content)
        with pytest.raises(TFLiteModelError, match=r"corrupted|not a TFLite model|cannot run"):
            TFLiteModel(path)
    with pytest.raises(TFLiteModelError, match="does not exist"):
        TFLiteModel(tmp_path / "missing.tflite")


def test_mismatched_inputs_raise(tflite_out):
    model = TFLiteModel(tflite_out / "topk_float32.tflite")
    with pytest.raises(TFLiteModelError, match=r"takes inputs of shape \[batch, 8, 8, 1\]"):
        model.predict(np.zeros((2, 28, 28, 1), np.float32))


def test_integer_inputs_are_refused_unless_already_quantized(tflite_out):
    pixels = np.full((1, 8, 8, 1), 200, np.uint8)
    int8, float32 = (TFLiteModel(tflite_out / f"topk_{v}.tflite") for v in ("int8", "float32"))
    for model in (int8, float32):
        with pytest.raises(TFLiteModelError, match="uint8 inputs"):
            model.predict(pixels)
    # Floats are quantized (200/255 -> pixel 200 - 128 = 72); int8 passes through unchanged.
    from_float = int8.predict(pixels / np.float32(255))
    np.testing.assert_array_equal(int8.predict(np.full((1, 8, 8, 1), 72, np.int8)), from_float)


def test_language_models_are_refused_clearly(lm_run, tmp_path, capsys):
    with pytest.raises(ExportError, match="supports image classifiers"):
        export_tflite(lm_run, tmp_path)
    assert cli.main(["export", "tflite", str(tmp_path / "nothing"), "--out", str(tmp_path)]) == 2
    assert "tfkit: error:" in capsys.readouterr().err


def _users_top_k_models():
    """A user's Sequential with a bare TopKActivation, and a Functional model whose Top-k MLP
    keeps more than its width (the identity in Keras)."""
    from tfkit.backend import keras
    from tfkit.layers import FeedForward, TopKActivation

    keras.utils.set_random_seed(0)
    bare = keras.Sequential([keras.Input((5, 8)), keras.layers.Dense(32, activation="relu"),
                             TopKActivation(4), keras.layers.Dense(3)])
    inputs = keras.Input((5, 8))
    wide_k = keras.Model(inputs, keras.layers.Dense(3)(FeedForward(8, top_k=16)(inputs)))
    return bare, wide_k


def test_full_integer_int8_rewrites_every_top_k_of_a_users_model():
    from tfkit.export import convert, integer_friendly

    bare, wide_k = _users_top_k_models()
    x = np.random.default_rng(0).random((200, 5, 8)).astype(np.float32)
    copy = integer_friendly(bare)  # the bare layer is rewritten too, not only FeedForward's
    assert [type(m).__name__ for m in copy.layers].count("ThresholdTopK") == 1
    np.testing.assert_allclose(copy(x).numpy(), bare(x).numpy(), atol=1e-6)
    # the exact-k SCATTER_ND mask quantizes badly (mean error ~0.06 here vs ~0.008)
    error = np.abs(TFLiteModel(convert(bare, "int8", calibration=x)).predict(x) - bare(x))
    assert float(np.mean(error)) < 0.03
    # k above the MLP width is the identity in Keras, and converts to the same function
    flat = TFLiteModel(convert(wide_k, "int8", calibration=x))
    assert float(np.mean(np.abs(flat.predict(x) - wide_k(x)))) < 0.03


def test_int8_of_a_subclassed_model_with_top_k_is_a_clear_error():
    from tfkit.backend import keras
    from tfkit.export import ExportError, integer_friendly
    from tfkit.layers import TopKActivation

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense, self.top_k = keras.layers.Dense(8), TopKActivation(2)

        def call(self, x):
            return self.top_k(self.dense(x))

    model = Sub()
    model(np.zeros((1, 4), np.float32))
    with pytest.raises(ExportError, match="subclassed.*functional or Sequential"):
        integer_friendly(model)


def test_parity_feeds_a_model_that_scales_its_own_pixels_the_pixels(tmp_path):
    """A user's model with a first Rescaling layer reads 0..255: the parity report (Keras
    accuracy, int8 calibration) must give it pixels, not [0, 1] images."""
    from tfkit.backend import keras, set_seed
    from tfkit.export.data import ImageSlices, fit_images
    from tfkit.export.parity import tflite_parity

    set_seed(0)
    digits = load("digits")
    x, y = fit_images(digits.train.x, (8, 8, 1)), digits.train.y
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Rescaling(1 / 255.0),
                              keras.layers.Flatten(), keras.layers.Dense(10)])
    model.compile(keras.optimizers.Adam(3e-2),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x.astype("float32"), y, epochs=20, batch_size=64, verbose=0)
    test_x = fit_images(digits.test.x, (8, 8, 1))
    want = float(np.mean(model.predict(test_x.astype("float32"), verbose=0).argmax(-1)
                         == digits.test.y))
    assert want > 0.8
    slices = ImageSlices("digits", test_x, digits.test.y, x[:64])
    report = tflite_parity(model, slices, tmp_path, "pixels", variants=("float32", "int8"),
                           log=lambda line: None)
    assert report["keras"]["accuracy"] == pytest.approx(want)
    assert report["variants"]["float32"]["accuracy"] == pytest.approx(want)
    assert report["variants"]["int8"]["accuracy"] > want - 0.05  # calibrated on pixels


def test_int8_calibration_of_the_wrong_dtype_or_shape():
    """`images / 255.0` is float64 (cast, not a converter error); uint8 pixels for a [0, 1]
    model and images of the wrong size are clear errors naming what the model takes."""
    from tfkit.backend import keras
    from tfkit.export import convert

    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)))
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8, 8, 1), dtype=np.uint8)
    flat = convert(model, "int8", calibration=pixels / 255.0)  # float64
    assert TFLiteModel(flat).input_dtype == np.int8
    convert(model, "int8", calibration=pixels[..., 0] / 255.0)  # grayscale without channels
    with pytest.raises(ExportError, match=r"uint8 calibration.*float32 \[N, 8, 8, 1\]"):
        convert(model, "int8", calibration=pixels)
    with pytest.raises(ExportError, match=r"calibration of shape \[8, 9, 9, 1\].*\[N, 8, 8, 1\]"):
        convert(model, "int8", calibration=np.zeros((8, 9, 9, 1), np.float32))


def test_card_says_what_each_variant_takes(tflite_out):
    card = (tflite_out / "MODEL_CARD.md").read_text()
    assert "- kind: image_classifier" in card
    assert "- `topk_float32.tflite`: float32 [1, 8, 8, 1], [0, 1] (pixel / 255)" in card
    assert "- `topk_int8.tflite`: int8 [1, 8, 8, 1], [0, 1] (pixel / 255) quantized as " \
           "round(x / 0.00392" in card


def test_a_language_model_converts_at_a_fixed_length():
    """An LM's [batch, None] input: the error asks for (length,), not an image size; given it,
    float32 TFLite computes Keras' logits."""
    from tfkit.export import convert
    from tfkit.models import DecoderLM

    lm = DecoderLM(vocabulary_size=24, sequence_length=12, num_layers=1, hidden_dim=16,
                   num_heads=2, intermediate_dim=32)
    ids = np.random.default_rng(0).integers(1, 24, (3, 12)).astype(np.int32)
    lm(ids)
    with pytest.raises(ExportError, match=r"\(length,\) for token ids"):
        convert(lm, "float32")
    got = TFLiteModel(convert(lm, "float32", input_shape=(12,))).predict(ids)
    np.testing.assert_allclose(got, lm(ids).numpy(), atol=1e-4)
