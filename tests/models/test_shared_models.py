import numpy as np

from tests.helpers import run_model_saving_test, tflite_parity
from tfkit.backend import keras, tf
from tfkit.models import DecoderLM, ViT


def tiny_vit(**kw):
    return ViT(image_size=8, patch_size=4, num_layers=2, hidden_dim=16, num_heads=2,
               intermediate_dim=32, num_classes=10, channels=1, **kw)


def test_vit_config_and_saving_roundtrip():
    model = tiny_vit(activation="relu", top_k=4)
    x = tf.random.uniform([3, 8, 8, 1])
    assert model(x).shape == (3, 10)
    clone = ViT.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    run_model_saving_test(model, x)


def test_vit_tflite_parity():
    model = tiny_vit(activation="relu", top_k=4)
    assert tflite_parity(model, np.random.rand(4, 8, 8, 1).astype(np.float32)) <= 1e-4


def test_decoder_lm_roundtrip_and_padding():
    lm = DecoderLM(vocabulary_size=20, sequence_length=12, num_layers=2, hidden_dim=16,
                   num_heads=2, intermediate_dim=32)
    ids = tf.constant([[5, 6, 7, 8], [3, 4, 9, 2]])
    run_model_saving_test(lm, ids)
    # Right padding does not change the logits of real tokens.
    padded = tf.constant([[5, 6, 7, 8, 0, 0]])
    np.testing.assert_allclose(lm(padded).numpy()[:, :4], lm(ids[:1]).numpy(), atol=1e-5)


def tiny_lm(**kw):
    return DecoderLM(vocabulary_size=20, sequence_length=12, num_layers=2, hidden_dim=16,
                     num_heads=2, intermediate_dim=32, **kw)


def test_decoder_lm_left_padding_keeps_positions():
    lm = tiny_lm()
    short = lm(tf.constant([[5, 6, 7]])).numpy()
    left = lm(tf.constant([[0, 0, 5, 6, 7], [0, 0, 0, 0, 5]])).numpy()
    np.testing.assert_allclose(left[0, 2:], short[0], atol=1e-5)
    np.testing.assert_allclose(left[1, -1], short[0, 0], atol=1e-5)


def test_decoder_lm_mixed_precision_left_padding_is_finite():
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        lm = tiny_lm()
        logits = lm(tf.constant([[0, 0, 5, 6, 7]])).numpy()
    finally:
        keras.mixed_precision.set_global_policy(policy)
    assert np.isfinite(logits).all()
