import numpy as np
import pytest

from tfkit.backend import keras, tf
from tfkit.models import ResNet, ViT
from tfkit.robustness import cka
from tfkit.robustness import model_perturbations as mp


def _vit():
    return ViT(image_size=8, patch_size=2, num_layers=3, hidden_dim=16, num_heads=2,
               intermediate_dim=32, channels=1)


def test_chain_and_block_removal_vit():
    model, x = _vit(), tf.random.uniform([3, 8, 8, 1])
    np.testing.assert_allclose(mp.chain_predict_fn(model)(x), model(x), atol=1e-5)
    # Removing block 1 = running the other layers in order.
    h = x
    for layer in model.layers[1:]:
        h = h if layer.name == "block_1" else layer(h)
    np.testing.assert_allclose(mp.remove_block(model, 1)(x), h, atol=1e-5)
    for part in ("attention", "mlp"):
        out = mp.remove_block(model, 1, part)(x)
        assert not np.allclose(out, model(x)) and not np.allclose(out, h)
    with pytest.raises(mp.SurgeryError, match="out of range"):
        mp.remove_block(model, 3)


def test_restricted_attention():
    model, x = _vit(), tf.random.uniform([3, 8, 8, 1])
    wide = mp.restrict_attention(model, [0, 1, 2], "local", window=4)  # sees everything
    np.testing.assert_allclose(wide(x), model(x), atol=1e-5)
    assert not np.allclose(mp.restrict_attention(model, [2], "self_cls")(x), model(x))
    mask = mp.attention_mask(3, "local", 1)
    assert mask.shape == (10, 10) and mask[0].all() and mask[:, 0].all()
    assert mask[1, 2] and not mask[1, 3]  # patch (0,0) sees (0,1), not (0,2)
    assert mp.attention_mask(3, "self_cls")[1:, 1:].sum() == 9


def test_resnet_block_removal_uses_the_shortcut():
    model, x = ResNet((1, 1), (4, 8), channels=1), tf.random.uniform([2, 8, 8, 1])
    assert mp.remove_block(model, 1)(x).shape == (2, 10)  # downsampling block -> projection
    assert mp.block_names(model) == ["block_0", "block_1"]


def test_non_chain_models_are_rejected():
    a = keras.Input((4,))
    model = keras.Model(a, keras.layers.Add()([keras.layers.Dense(4)(a), a]))
    with pytest.raises(mp.SurgeryError):
        mp.chain_layers(model)


def test_linear_cka_properties():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 20))
    q, _ = np.linalg.qr(rng.normal(size=(20, 20)))
    assert cka.linear_cka(x, 3.0 * x @ q + 1.0) == pytest.approx(1.0, abs=1e-9)
    assert cka.linear_cka(x, rng.normal(size=(200, 20))) < 0.2
    m = cka.cka_matrix([x, x[:, :10], rng.normal(size=(200, 5))])
    np.testing.assert_allclose(m, m.T)
    np.testing.assert_allclose(np.diag(m), 1.0)


def test_layer_cka_of_models():
    images = np.random.default_rng(0).random((16, 8, 8, 1)).astype(np.float32)
    names, m = cka.layer_cka(_vit(), images, "cls")
    assert names == ["position_embedding", "block_0", "block_1", "block_2"] and m.shape == (4, 4)
    names, m = cka.layer_cka(ResNet((1, 1), (4, 8), channels=1), images, "all")
    assert names == ["stem", "block_0", "block_1"] and np.all((m > -1e-6) & (m < 1 + 1e-6))


def test_restricted_attention_on_a_resnet_names_the_block_that_is_no_transformer():
    # was a TypeError from int(None): the ResNet's blocks take images of any size
    model = ResNet((1, 1), (4, 8), channels=1)
    with pytest.raises(mp.SurgeryError, match="'block_0' is not a Transformer block"):
        mp.restrict_attention(model, [0])
