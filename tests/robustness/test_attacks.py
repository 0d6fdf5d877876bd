import numpy as np

from tfkit.backend import keras, tf
from tfkit.robustness import patch, spatial
from tfkit.robustness.adversarial import FGSM, PGD


def _linear_model(x, y):
    model = keras.Sequential([keras.Input(x.shape[1:]), keras.layers.Flatten(),
                              keras.layers.Dense(10)])
    model.compile(keras.optimizers.Adam(0.05),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=15, batch_size=128, verbose=0)
    return model


def _digits():
    import tfkit.datasets as d

    data = d.load("digits")
    return (data.train.x[..., None] / 255.0).astype(np.float32), data.train.y


def test_attacks_stay_in_the_ball_and_lower_accuracy():
    x, y = _digits()
    model = _linear_model(x, y)
    x, y = x[:200], y[:200]
    clean = np.mean(np.argmax(model(x), -1) == y)
    for attack in (FGSM(0.1), PGD(0.1, "linf", steps=5)):
        adv = attack(model, x, y, seed=0)
        assert float(tf.reduce_max(tf.abs(adv - x))) <= 0.1 + 1e-6
        assert float(tf.reduce_min(adv)) >= 0 and float(tf.reduce_max(adv)) <= 1
        assert np.mean(np.argmax(model(adv), -1) == y) < clean - 0.2
    adv = PGD(1.0, "l2", steps=5)(model, x, y, seed=0)
    norms = tf.norm(tf.reshape(adv - x, [len(x), -1]), axis=1)
    assert float(tf.reduce_max(norms)) <= 1.0 + 1e-4
    strong = PGD(0.1, "linf", steps=10)(model, x, y, seed=0)
    assert np.mean(np.argmax(model(strong), -1) == y) <= np.mean(
        np.argmax(model(FGSM(0.1)(model, x, y)), -1) == y) + 0.02  # PGD at least as strong
    np.testing.assert_array_equal(PGD(0.1, steps=2)(model, x, y, seed=3),
                                  PGD(0.1, steps=2)(model, x, y, seed=3))


def test_spatial_transforms():
    x = tf.random.uniform([2, 8, 8, 1])
    np.testing.assert_allclose(spatial.rotate(x, 0.0), x, atol=1e-6)
    np.testing.assert_allclose(spatial.rotate(x, 90.0), tf.image.rot90(x, 1), atol=1e-5)
    shifted = spatial.translate(x, 1, 2)
    np.testing.assert_allclose(shifted[:, 1:, 2:], x[:, :-1, :-2])
    assert float(tf.reduce_sum(shifted[:, :1])) == 0
    assert len(spatial.grid((-10, 0, 10), (-1, 0, 1))) == 27


def test_patch_perturbations():
    x = tf.random.uniform([3, 8, 8, 2])
    np.testing.assert_allclose(patch.from_patches(patch.to_patches(x, 4), 8, 8), x)
    shuffled = patch.shuffle_patches(x, 2, seed=1)
    assert not np.allclose(shuffled, x)
    np.testing.assert_allclose(np.sort(np.ravel(shuffled[0])), np.sort(np.ravel(x[0])))
    dropped = patch.drop_patches(x, 2, 3, seed=0)
    zero_cells = np.all(patch.to_patches(dropped, 2).numpy() == 0, axis=(2, 3, 4)).sum(1)
    np.testing.assert_array_equal(zero_cells, [3, 3, 3])
    noisy = patch.patch_noise(x, 4, 1, 0.5, seed=0)
    changed = np.any(patch.to_patches(noisy, 4).numpy() != patch.to_patches(x, 4).numpy(),
                     axis=(2, 3, 4)).sum(1)
    np.testing.assert_array_equal(changed, [1, 1, 1])  # aligned: exactly one grid patch
    misaligned = patch.patch_noise(x, 4, 1, 0.5, seed=0, offset=2)
    changed = np.any(patch.to_patches(misaligned, 4).numpy() != patch.to_patches(x, 4).numpy(),
                     axis=(2, 3, 4)).sum(1)
    assert (changed > 1).all()  # straddles several grid patches


def test_a_mixed_float16_models_gradient_does_not_underflow_on_confident_examples():
    # A confident model (logit margin 20: 1 - p ~ 2e-9) computing in float16: its float16
    # backward pass flushed the loss gradient to 0, so FGSM/PGD did not move those images.
    from tfkit.robustness.adversarial import input_gradient

    def model(dtype):
        dense = keras.layers.Dense(2, dtype=dtype, kernel_initializer=keras.initializers.Constant(
            [[-1.25, 1.25]] * 16), bias_initializer=keras.initializers.Constant([10.0, -10.0]))
        return keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(dtype=dtype),
                                 dense])

    x = tf.random.uniform([4, 4, 4, 1], 0.0, 0.01, seed=1)  # margin 20: class 0, p ~ 1 - 2e-9
    y = tf.zeros([4], tf.int64)
    full, half = model("float32"), model("mixed_float16")
    assert half(x).dtype == tf.float16
    expected = np.sign(input_gradient(full, x, y))
    assert np.all(expected != 0)
    np.testing.assert_array_equal(np.sign(input_gradient(half, x, y)), expected)
    adv = FGSM(0.1)(half, x, y)
    assert float(tf.reduce_min(tf.abs(adv - x))) > 0.05  # every pixel moved
    # L2 steps were grad / sqrt(|grad|^2 + 1e-12): a gradient norm below 1e-6 (here ~1e-8,
    # float32) took steps of ~1 % of the step size; now every image moves the full 0.5
    for m in (full, half):
        adv = PGD(0.5, "l2", steps=1, step_size=0.5, random_start=False)(m, x, y)
        np.testing.assert_allclose(tf.norm(tf.reshape(adv - x, [4, -1]), axis=1), 0.5, rtol=1e-3)
