import numpy as np

from tfkit.models import ViT
from tfkit.sparsity import gathered_top_k, max_abs_diff, nonzero_fraction, to_tflite
from tfkit.sparsity.tflite import compare_latency, latency_ms, predict_tflite


def _vit(top_k):
    return ViT(image_size=8, patch_size=4, num_layers=2, hidden_dim=16, num_heads=2,
               intermediate_dim=64, channels=1, activation="relu", top_k=top_k)


def test_gathered_top_k_matches_keras_and_tflite():
    model = _vit(top_k=4)
    x = np.random.default_rng(0).random((6, 8, 8, 1)).astype("float32")
    fast = gathered_top_k(model)
    assert type(fast.blocks[0].feed_forward).__name__ == "GatheredFeedForward"
    np.testing.assert_allclose(fast(x).numpy(), model(x).numpy(), atol=1e-5)
    assert nonzero_fraction(fast, x)["block_0"] <= 4 / 64  # measurable like the original
    flat = to_tflite(fast)
    assert max_abs_diff(model, flat, x) <= 1e-4
    assert max_abs_diff(model, to_tflite(model), x) <= 1e-4  # the one-hot mask graph too
    off = predict_tflite(flat, x, xnnpack=False)
    np.testing.assert_allclose(off, model(x).numpy(), atol=1e-4)


def test_int8_and_latency():
    model = _vit(top_k=None)
    x = np.random.default_rng(0).random((4, 8, 8, 1)).astype("float32")
    flat, small = to_tflite(model), to_tflite(model, int8=True)
    assert len(small) < 0.9 * len(flat)  # tiny tensors stay float; bigger ones go int8
    assert max_abs_diff(model, small, x) < 0.5  # quantized, yet close to float
    t = latency_ms(small, x, xnnpack=False, runs=5, warmup=1)
    assert 0 < t["median_ms"] <= t["p90_ms"]
    both = compare_latency({"f": flat, "q": small}, x, runs=4, rounds=2, warmup=1)
    assert set(both) == {"f/xnnpack_on", "f/xnnpack_off", "q/xnnpack_on", "q/xnnpack_off"}


def test_gathered_model_converts_without_unbuilt_layer_warnings(caplog):
    # GatheredFeedForward skips its Top-k and dropout sublayers; unbuilt, the SavedModel step
    # of the conversion warned "Skipping full serialization ... not built" for each of them
    with caplog.at_level("WARNING", logger="tensorflow"):
        to_tflite(gathered_top_k(_vit(4)), batch_size=1)
    assert "not built" not in caplog.text
