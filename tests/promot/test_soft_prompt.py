import numpy as np
import pytest

from tests.helpers import run_layer_test
from tests.promot.conftest import tiny_gpt2
from tfkit.backend import tf
from tfkit.layers import SoftPrompt
from tfkit.promot import PromptedLM, UnsupportedModelError, token_embeddings


def test_soft_prompt_layer_contract():
    layer = run_layer_test(SoftPrompt, {"num_tokens": 3, "init_range": 0.5},
                           tf.random.normal([2, 5, 8]), expected_output_shape=(2, 8, 8))
    values = layer.prompt.numpy()
    assert np.abs(values).max() <= 0.5 and values.std() > 0.1  # U(-0.5, 0.5)


def test_soft_prompt_prepends_and_extends_mask():
    layer = SoftPrompt(2)
    x = tf.random.normal([3, 4, 6])
    mask = tf.constant([[True, True, False, False]] * 3)
    out, out_mask = layer(x, padding_mask=mask)
    np.testing.assert_allclose(out[:, 2:].numpy(), x.numpy())
    np.testing.assert_allclose(out[0, :2].numpy(), layer.prompt.numpy())
    assert out_mask.numpy().tolist()[0] == [True, True, True, True, False, False]


def test_init_from_vocabulary_text_and_file_roundtrip(tmp_path):
    table = np.arange(40, dtype=np.float32).reshape(10, 4)
    layer = SoftPrompt(3)
    layer.init_from_vocabulary(table, seed=1)
    rows = layer.prompt.numpy()[:, 0] / 4
    assert len(set(rows)) == 3 and 0 not in rows and set(rows) <= set(range(1, 10))
    layer.init_from_text(table, [7, 2])
    np.testing.assert_allclose(layer.prompt.numpy(), table[[7, 2, 7]])
    path = layer.save_prompt(tmp_path / "p.npz")
    assert path.stat().st_size < 4096  # a small separate file
    loaded = SoftPrompt.load_prompt(path)
    np.testing.assert_allclose(loaded.prompt.numpy(), layer.prompt.numpy())
    assert loaded.num_tokens == 3 and loaded.positions == "unshifted"


def test_prompted_decoder_lm_removing_prompt_leaves_model_unchanged(tiny_lm):
    lm = tiny_lm()
    ids = tf.constant([[5, 6, 7, 0], [3, 4, 9, 2]])
    np.testing.assert_allclose(PromptedLM(lm)(ids).numpy(), lm(ids).numpy(), atol=1e-6)
    prompted = PromptedLM(lm, SoftPrompt(3))
    assert prompted(ids).shape == (2, 4, 40)
    assert np.abs(prompted(ids).numpy() - lm(ids).numpy()).max() > 1e-3
    assert len(prompted.trainable_variables) == len(lm.trainable_variables) + 1


def test_prompt_positions_unshifted_keeps_text_positions(tiny_lm):
    """With attention switched off every position's logits depend on its token and position
    only: an unshifted prompt leaves the text's logits exactly as without it, a shifted one
    moves the text p positions on."""
    lm = tiny_lm()
    out = lm.get_layer("block_0").attention_output
    out.set_weights([np.zeros_like(w) for w in out.get_weights()])
    ids = tf.constant([[5, 6, 7, 8], [3, 4, 9, 2]])
    base = lm(ids).numpy()
    unshifted = PromptedLM(lm, SoftPrompt(3))(ids).numpy()
    np.testing.assert_allclose(unshifted, base, atol=1e-5)
    shifted = PromptedLM(lm, SoftPrompt(3, positions="shifted"))(ids).numpy()
    assert np.abs(shifted - base).max() > 1e-3
    with pytest.raises(ValueError, match="positions"):
        SoftPrompt(3, positions="relative")


def test_prompted_gpt2_backbone_matches_backbone():
    backbone = tiny_gpt2()
    ids = tf.constant([[5, 6, 7, 0], [3, 4, 9, 2]])
    hidden = backbone({"token_ids": ids, "padding_mask": tf.cast(ids != 0, tf.int32)})
    expected = backbone.token_embedding(hidden, reverse=True).numpy()
    np.testing.assert_allclose(PromptedLM(backbone)(ids).numpy(), expected, atol=1e-5)
    for positions in ("unshifted", "shifted"):
        prompted = PromptedLM(backbone, SoftPrompt(4, positions=positions))
        assert prompted(ids).shape == (2, 4, 60)
    assert token_embeddings(backbone).shape == (60, 16)


def test_prompted_lm_config_roundtrip(tiny_lm):
    lm, ids = tiny_lm(), tf.constant([[5, 6, 7]])
    prompted = PromptedLM(lm, SoftPrompt(2))
    clone = PromptedLM.from_config(prompted.get_config())
    clone.set_weights(prompted.get_weights())
    np.testing.assert_allclose(clone(ids).numpy(), prompted(ids).numpy(), atol=1e-6)


def test_prompted_lm_takes_the_lms_own_pad_id(tiny_lm):
    """Without a prompt, `PromptedLM(lm)` equals `lm` whatever its pad_id (0 is a real token
    when pad_id=7), and keeps that pad_id through serialization."""
    from tfkit.models import DecoderLM

    lm = DecoderLM(vocabulary_size=40, sequence_length=16, num_layers=1, hidden_dim=16,
                   num_heads=2, intermediate_dim=32, pad_id=7)
    ids = tf.constant([[5, 0, 6], [3, 4, 7], [7, 3, 4]])  # right- and left-padded rows
    prompted = PromptedLM(lm)
    assert prompted.pad_id == 7
    np.testing.assert_allclose(prompted(ids).numpy(), lm(ids).numpy(), atol=1e-5)
    clone = PromptedLM.from_config(PromptedLM(lm, SoftPrompt(2)).get_config())
    assert clone.pad_id == 7
    assert PromptedLM(lm, pad_id=0).pad_id == 0  # an explicit pad_id still wins


def test_unsupported_model_is_a_clear_error():
    from tfkit.backend import keras

    inputs = keras.Input((None,), dtype="int32")
    model = keras.Model(inputs, keras.layers.Embedding(10, 4)(inputs))
    with pytest.raises(UnsupportedModelError, match="DecoderLM"):
        PromptedLM(model, SoftPrompt(2))


def test_init_from_text_rejects_empty_and_out_of_vocabulary_ids():
    table = np.arange(40, dtype=np.float32).reshape(10, 4)
    layer = SoftPrompt(3)
    with pytest.raises(ValueError, match="token_ids is empty"):
        layer.init_from_text(table, [])  # was: silently the padding row 0, three times
    with pytest.raises(ValueError, match=r"\[-1, 10\].*vocabulary of 10"):
        layer.init_from_text(table, [2, -1, 10])  # -1 silently took the last row


def test_soft_prompt_rejects_bad_arguments_at_construction():
    with pytest.raises(ValueError, match="num_tokens"):
        SoftPrompt(-1)
    with pytest.raises(ValueError, match="initializer"):
        SoftPrompt(3, initializer="unifrom")  # was only raised at the first call


def test_prompt_of_another_hidden_size_is_a_clear_error(tmp_path):
    prompt = SoftPrompt(3)
    prompt.build((None, None, 8))
    path = prompt.save_prompt(tmp_path / "p.npz")
    loaded = SoftPrompt.load_prompt(path)
    lm = tiny_gpt2()  # hidden 16
    with pytest.raises(ValueError, match="width 8.*hidden size 16"):
        PromptedLM(lm, loaded)
    with pytest.raises(ValueError, match="width 8.*hidden size 16"):
        loaded(tf.zeros([1, 2, 16]))


def test_load_prompt_names_a_file_that_is_not_a_prompt(tmp_path):
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    (tmp_path / "text.npz").write_text("not a zip")
    for name in ("other.npz", "text.npz"):
        with pytest.raises(ValueError, match="not a soft-prompt file"):
            SoftPrompt.load_prompt(tmp_path / name)


@pytest.mark.parametrize("positions, fits", [("unshifted", 64), ("shifted", 60)])
def test_text_longer_than_the_gpt2_position_table_is_a_clear_error(positions, fits):
    """keras-nlp's own error ("Expected size[0] in [0, 64], but got 65 [Op:Slice]") names
    neither the input's length nor the prompt: PromptedLM names both."""
    prompted = PromptedLM(tiny_gpt2(), SoftPrompt(4, positions=positions))
    assert prompted(tf.ones([1, fits], tf.int32)).shape == (1, fits, 60)
    with pytest.raises(ValueError, match=f"{fits + 1} tokens.*{fits} positions for text"):
        prompted(tf.ones([1, fits + 1], tf.int32))
    ids = tf.ones([2, fits], tf.int32)  # a dict of token ids, as the functional call took
    np.testing.assert_array_equal(prompted({"token_ids": ids}), prompted(ids))
    with pytest.raises(ValueError, match=f"{fits + 1} tokens"):
        prompted({"token_ids": tf.ones([1, fits + 1], tf.int32)})
    step = tf.function(lambda ids: prompted(ids), input_signature=[
        tf.TensorSpec([None, None], tf.int32)])  # length unknown when traced
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"{fits} positions for text"):
        step(tf.ones([1, fits + 1], tf.int32))


def test_prompt_file_follows_the_precision_policy_it_is_loaded_under(tmp_path):
    from tfkit.backend import keras

    old = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")  # a prompt trained on a GPU
    try:
        prompt = SoftPrompt(2)
        prompt.build((None, None, 4))
        path = prompt.save_prompt(tmp_path / "p.npz")
    finally:
        keras.mixed_precision.set_global_policy(old)
    loaded = SoftPrompt.load_prompt(path)  # used in a float32 model
    assert loaded.compute_dtype == "float32"  # was float16: the text's embeddings rounded
    x = tf.random.normal([1, 3, 4])
    out = loaded(x)
    assert out.dtype == tf.float32
    np.testing.assert_array_equal(out[:, 2:].numpy(), x.numpy())
    np.testing.assert_array_equal(out[0, :2].numpy(), prompt.prompt.numpy())
    assert SoftPrompt.load_prompt(path, dtype="mixed_float16").compute_dtype == "float16"


def test_load_prompt_with_another_token_count_names_both_counts(tmp_path):
    layer = SoftPrompt(3)
    layer.build((None, None, 4))
    path = layer.save_prompt(tmp_path / "p.npz")
    with pytest.raises(ValueError, match="holds 3 prompt vectors.*num_tokens=5"):
        SoftPrompt.load_prompt(path, num_tokens=5)
    assert SoftPrompt.load_prompt(path, num_tokens=3).num_tokens == 3
