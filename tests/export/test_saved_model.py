"""SavedModel export: signatures via saved_model_cli, a fresh process without tfkit, parity."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tfkit.backend import tf
from tfkit.datasets import load
from tfkit.export import ExportError, resolve_source
from tfkit.export.cli import export_savedmodel
from tfkit.runs import RunDir

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def saved_model_cli(*args: str) -> str:
    cmd = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def vit_export(vit_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("sm") / "topk" / "1"
    assert export_savedmodel(vit_run, out) == 0
    return out


@pytest.fixture(scope="module")
def lm_export(lm_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("sm") / "lm" / "3"
    assert export_savedmodel(lm_run, out) == 0
    return out


def test_layout_card_and_parity_record(vit_export):
    assert (vit_export / "saved_model.pb").exists() and (vit_export / "variables").is_dir()
    record = json.loads((vit_export.parent / "export.json").read_text())
    assert record["parity"]["max_abs_diff"] <= 1e-5
    assert record["parity"]["examples"] == len(load("digits").test)
    card = (vit_export.parent / "MODEL_CARD.md").read_text()
    assert "tfkit export savedmodel" in card and "digits" in card


def test_saved_model_cli_show_and_run(vit_export, tmp_path):
    from tensorflow.python.tools import saved_model_cli as smcli  # `show --all`, in-process

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        smcli._show_all(str(vit_export))
    shown = buffer.getvalue()
    for name in ("serving_default", "classify_any_size", "images", "logits", "probabilities",
                 "classes", "labels", "DT_UINT8", "(-1, 8, 8, 1)", "(-1, -1, -1, 1)"):
        assert name in shown, name
    x = load("digits").test.x[:3, :, :, None]
    np.save(tmp_path / "x.npy", x)
    ran = saved_model_cli("run", "--dir", str(vit_export), "--tag_set", "serve",
                          "--signature_def", "serving_default", "--inputs",
                          f"images={tmp_path / 'x.npy'}")
    assert "classes" in ran and "probabilities" in ran and "logits" in ran


@pytest.mark.slow
def test_saved_model_cli_runs_every_other_signature(vit_export, lm_export):
    literal = str(np.zeros((2, 12, 10, 1), np.uint8).tolist())
    ran = saved_model_cli("run", "--dir", str(vit_export), "--tag_set", "serve",
                          "--signature_def", "classify_any_size", "--input_exprs",
                          f"images={literal}")
    assert "classes" in ran
    ran = saved_model_cli("run", "--dir", str(lm_export), "--tag_set", "serve",
                          "--signature_def", "generate", "--input_exprs",
                          "token_ids=[[3, 4, 5]];max_new_tokens=4")
    assert "token_ids" in ran


def test_fresh_process_without_tfkit_runs_every_signature(vit_export, lm_export):
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        import tensorflow as tf
        m = tf.saved_model.load({str(vit_export)!r})
        out = m.signatures["serving_default"](images=tf.zeros([2, 8, 8, 1], tf.uint8))
        assert out["probabilities"].shape == (2, 10) and out["classes"].dtype == tf.int64
        out = m.signatures["classify_any_size"](images=tf.zeros([1, 16, 20, 1], tf.uint8))
        assert out["labels"].shape == (1,)
        lm = tf.saved_model.load({str(lm_export)!r})
        out = lm.signatures["serving_default"](token_ids=tf.constant([[3, 4, 0]]))
        assert out["logits"].shape == (1, 3, 24) and out["next_token"].shape == (1,)
        out = lm.signatures["generate"](token_ids=tf.constant([[3, 4]]),
                                        max_new_tokens=tf.constant(5))
        assert out["token_ids"].shape == (1, 7)
        out = lm.signatures["complete_text"](text=tf.constant(["a b", "c zz d"]),
                                             max_new_tokens=tf.constant(2))
        assert out["completion"].dtype == tf.string and out["token_ids"].shape == (2, 5)
        assert "tfkit" not in sys.modules, "the SavedModel pulled in tfkit"
        print("ok")
        """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=ENV, cwd="/", timeout=300)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]


def test_outputs_equal_keras(vit_run, vit_export):
    model = RunDir(vit_run, log=None).load_model("topk")
    x = load("digits").test.x[:64, :, :, None]
    served = tf.saved_model.load(str(vit_export)).signatures["serving_default"](
        images=tf.constant(x))
    want = model(x.astype(np.float32) / 255.0).numpy()
    assert np.max(np.abs(served["logits"].numpy() - want)) <= 1e-5
    np.testing.assert_array_equal(served["classes"].numpy(), want.argmax(-1))
    np.testing.assert_allclose(served["probabilities"].numpy().sum(-1), 1.0, atol=1e-5)


def test_wrong_dtype_and_shape_give_clear_errors(vit_export, lm_export):
    sig = tf.saved_model.load(str(vit_export)).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a uint8 tensor"):
        sig(images=tf.zeros([1, 8, 8, 1], tf.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"uint8 \[batch, 8, 8, 1\]"):
        sig(images=tf.zeros([1, 9, 8, 1], tf.uint8))
    lm = tf.saved_model.load(str(lm_export)).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="must be < 24"):
        lm(token_ids=tf.constant([[3, 99]]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="at most 12 tokens"):
        lm(token_ids=tf.ones([1, 13], tf.int32))


def test_language_model_next_token_and_padding(lm_run, lm_export):
    model = RunDir(lm_run, log=None).load_model("lm")
    sig = tf.saved_model.load(str(lm_export)).signatures["serving_default"]
    ids = np.array([[5, 6, 7, 0, 0], [1, 2, 3, 4, 5]], np.int32)
    out = sig(token_ids=tf.constant(ids))
    want = model(ids).numpy()
    assert np.max(np.abs(out["logits"].numpy() - want)) <= 1e-5
    # Row 0 is right-padded: its next token comes from position 2, row 1's from position 4.
    np.testing.assert_allclose(out["next_token_logits"].numpy(),
                               np.stack([want[0, 2], want[1, 4]]), atol=1e-5)


def test_language_model_left_padding_matches_unpadded(lm_export):
    lm = tf.saved_model.load(str(lm_export))
    serve, generate = lm.signatures["serving_default"], lm.signatures["generate"]
    left = serve(token_ids=tf.constant([[0, 0, 5, 6, 7]]))["next_token_logits"].numpy()
    alone = serve(token_ids=tf.constant([[5, 6, 7]]))["next_token_logits"].numpy()
    np.testing.assert_allclose(left, alone, atol=1e-5)
    steps = tf.constant(4)
    padded = generate(token_ids=tf.constant([[0, 0, 5, 6, 7]]), max_new_tokens=steps)
    unpadded = generate(token_ids=tf.constant([[5, 6, 7]]), max_new_tokens=steps)
    np.testing.assert_array_equal(padded["token_ids"].numpy()[:, 2:],
                                  unpadded["token_ids"].numpy())


def test_in_graph_word_tokenizer_matches_token_id_generation(lm_export):
    lm = tf.saved_model.load(str(lm_export))
    text = lm.signatures["complete_text"](text=tf.constant(["a b", "c zz d"]),
                                          max_new_tokens=tf.constant(3))
    # "a"=2, "b"=3, "c"=4, "d"=5, unknown "zz"=1; shorter prompts are left-padded.
    ids = lm.signatures["generate"](token_ids=tf.constant([[0, 2, 3], [4, 1, 5]]),
                                    max_new_tokens=tf.constant(3))["token_ids"].numpy()
    np.testing.assert_array_equal(text["token_ids"].numpy(), ids)
    words = ["<pad>", "<unk>", *"abcdefghijklmnopqrstuv"]
    expected = [" ".join(words[i] for i in row[3:] if i != 0) for row in ids]
    assert [s.decode() for s in text["completion"].numpy()] == expected


def test_source_resolution_errors(vit_run, tmp_path):
    src = resolve_source(vit_run / "models" / "topk.keras")
    assert src.name == "topk" and src.meta["primary"] is True
    with pytest.raises(ExportError, match="does not exist"):
        resolve_source(tmp_path / "nope")
    with pytest.raises(ExportError, match="no models"):
        resolve_source(tmp_path)
    (tmp_path / "models").mkdir()
    for name in ("a", "b"):
        (tmp_path / "models" / f"{name}.keras").write_bytes(b"x")
    with pytest.raises(ExportError, match="several models"):
        resolve_source(tmp_path)


def _users_classifier(head: list, dtype: str = "float32"):
    """A user's 4x4x1 Sequential: `head` layers before Flatten + Dense(3, +softmax?)."""
    from tfkit.backend import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((4, 4, 1), dtype=dtype), *head, keras.layers.Flatten(),
                             keras.layers.Dense(3)])


def test_a_model_that_scales_pixels_itself_gets_the_pixels(tmp_path):
    """A Rescaling first layer or a uint8 Input: the export must not divide by 255 again."""
    from tfkit.backend import keras
    from tfkit.export import export_saved_model

    pixels = np.random.default_rng(0).integers(0, 256, (3, 4, 4, 1)).astype(np.uint8)
    for name, dtype in (("rescaling", "float32"), ("uint8", "uint8")):
        model = _users_classifier([keras.layers.Rescaling(1 / 255.0)], dtype)
        out = export_saved_model(model, {}, tmp_path / name / "1")
        serve = tf.saved_model.load(str(out)).signatures["serving_default"]
        want = model(tf.cast(pixels, dtype)).numpy()
        for batch in (pixels[:1], pixels):  # a batch of 1 and of 3
            np.testing.assert_allclose(serve(images=tf.constant(batch))["logits"].numpy(),
                                       want[:len(batch)], atol=1e-5, err_msg=name)


def test_a_model_ending_in_softmax_serves_its_own_probabilities(tmp_path):
    from tfkit.backend import keras
    from tfkit.export import export_saved_model

    model = _users_classifier([])
    model = keras.Model(model.inputs, keras.layers.Softmax()(model.outputs[0]))
    out = export_saved_model(model, {}, tmp_path / "soft" / "1")
    pixels = np.random.default_rng(0).integers(0, 256, (3, 4, 4, 1)).astype(np.uint8)
    served = tf.saved_model.load(str(out)).signatures["serving_default"](
        images=tf.constant(pixels))
    want = model(pixels.astype(np.float32) / 255.0).numpy()
    np.testing.assert_allclose(served["probabilities"].numpy(), want, atol=1e-5)
    np.testing.assert_allclose(served["logits"].numpy(), np.log(want), atol=1e-4)
    with pytest.raises(ExportError, match="logits"):
        export_saved_model(model, {"outputs": "probs"}, tmp_path / "typo" / "1")



def test_a_mixed_precision_model_serves_float32_outputs(tmp_path):
    """Trained under mixed_float16 (its logits come out float16): the signatures still serve
    the documented float32 `logits` / `probabilities` (and an LM's logits)."""
    from tfkit.backend import keras
    from tfkit.export import export_saved_model
    from tfkit.models import DecoderLM

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = _users_classifier([])
        lm = DecoderLM(vocabulary_size=12, sequence_length=6, num_layers=1, hidden_dim=8,
                       num_heads=2, intermediate_dim=16)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    pixels = np.random.default_rng(0).integers(0, 256, (3, 4, 4, 1)).astype(np.uint8)
    out = export_saved_model(model, {}, tmp_path / "half" / "1")
    served = tf.saved_model.load(str(out)).signatures["serving_default"](
        images=tf.constant(pixels))
    assert served["logits"].dtype == served["probabilities"].dtype == tf.float32
    want = model(pixels.astype(np.float32) / 255.0).numpy().astype(np.float32)
    np.testing.assert_allclose(served["logits"].numpy(), want, atol=1e-6)
    out = export_saved_model(lm, {"sequence_length": 6}, tmp_path / "lm" / "1")
    lm_out = tf.saved_model.load(str(out)).signatures["serving_default"](
        token_ids=tf.constant([[3, 4, 0]]))
    assert lm_out["logits"].dtype == lm_out["next_token_logits"].dtype == tf.float32

def test_cli_parity_of_a_pixel_model_is_against_keras_on_its_pixels(tmp_path, capsys):
    """The card's held-out accuracy is the model's, not that of pixels scaled twice."""
    from tfkit.backend import keras

    data = load("digits")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Rescaling(1 / 255.0),
                              keras.layers.Flatten(), keras.layers.Dense(10)])
    model.compile(keras.optimizers.Adam(0.05),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"])
    model.fit(data.train.x[..., None].astype(np.float32), data.train.y, epochs=3, verbose=0)
    _, accuracy = model.evaluate(data.test.x[..., None].astype(np.float32), data.test.y,
                                 verbose=0)
    model.save(tmp_path / "own.keras")
    (tmp_path / "own.json").write_text(json.dumps({"dataset": "digits"}))
    assert export_savedmodel(tmp_path / "own.keras", tmp_path / "sm" / "own" / "1") == 0
    parity = json.loads((tmp_path / "sm" / "own" / "export.json").read_text())["parity"]
    assert parity["max_abs_diff"] <= 1e-4 and parity["examples"] == len(data.test.y)
    assert abs(parity["accuracy"] - accuracy) <= 1e-6 and accuracy > 0.8


def test_a_grayscale_model_without_a_channel_axis_exports(tmp_path):
    """keras.Input((H, W)) (the Keras MNIST tutorial's model): served as [batch, H, W, 1]."""
    from tfkit.backend import keras
    from tfkit.export import export_saved_model

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4, 4)), keras.layers.Flatten(), keras.layers.Dense(3)])
    with pytest.raises(ExportError, match='add "kind"'):  # [batch, 4, 4] could be a sequence
        export_saved_model(model, {}, tmp_path / "unsure" / "1")
    out = export_saved_model(model, {"kind": "image_classifier"}, tmp_path / "gray" / "1")
    pixels = np.random.default_rng(0).integers(0, 256, (3, 4, 4)).astype(np.uint8)
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]
    served = serve(images=tf.constant(pixels[..., None]))["logits"].numpy()
    np.testing.assert_allclose(served, model(pixels / 255.0).numpy(), atol=1e-5)


def test_a_first_rescaling_that_maps_unit_images_is_not_a_pixel_model():
    """Rescaling(2, offset=-1) reads [0, 1] images (-> [-1, 1]); only a pixel-sized scale
    (1/255, 1/127.5) marks a model that reads 0..255."""
    from tfkit.backend import keras, tf
    from tfkit.model_io import model_inputs, takes_pixels

    def model(scale, offset=0.0):
        return keras.Sequential([keras.Input((2, 2, 1)), keras.layers.Rescaling(scale, offset),
                                 keras.layers.Flatten(), keras.layers.Dense(2)])

    pixels = tf.constant(np.full((1, 2, 2, 1), 255, np.uint8))
    assert not takes_pixels(model(2.0, -1.0))
    assert float(tf.reduce_max(model_inputs(model(2.0, -1.0), pixels))) == 1.0
    for scale, offset in ((1 / 255, 0.0), (1 / 127.5, -1.0)):
        assert takes_pixels(model(scale, offset))
        assert float(tf.reduce_max(model_inputs(model(scale, offset), pixels))) == 255.0


def test_card_of_a_users_keras_file_describes_what_was_exported(tmp_path):
    """A bare `.keras` (no meta kind, no run): the card names the kind the export inferred,
    no made-up training command, and what `images` and `logits` hold."""
    from tfkit.backend import keras

    inputs = keras.Input((4, 4, 1), dtype="uint8")
    hidden = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255.0)(inputs))
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden)).save(
        tmp_path / "own.keras")
    with contextlib.redirect_stdout(io.StringIO()):
        assert export_savedmodel(tmp_path / "own.keras", tmp_path / "sm" / "own" / "1") == 0
    card = (tmp_path / "sm" / "own" / "MODEL_CARD.md").read_text()
    assert "- kind: image_classifier" in card
    assert "tfkit run a tfkit run" not in card and "trained by: unknown" in card
    assert "uint8 pixels 0-255 [batch, 4, 4, 1], given to the model as they are" in card
    assert "log-probabilities (the model ends in a softmax)" in card
