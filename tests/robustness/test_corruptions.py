import numpy as np
import pytest

from tfkit.backend import tf
from tfkit.robustness.corruptions import CORRUPTIONS, CorruptionError, corrupt


def _photos(size: int = 32, n: int = 4) -> np.ndarray:
    """Real photos (scikit-learn's samples), crops resized to `size`: uint8 [n, size, size, 3]."""
    from sklearn.datasets import load_sample_images

    photos = np.stack(load_sample_images().images)[:, :400, :400]
    crops = [photos[i % 2, 25 * (i // 2):25 * (i // 2) + 300, :300] for i in range(n)]
    return tf.image.resize(np.stack(crops), [size, size], "area").numpy().round().astype(np.uint8)


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_dtype_range_shape_and_determinism(name):
    x = _photos()
    for images in (x, x.astype(np.float32) / 255.0):
        a = corrupt(images, name, 3, seed=7)
        assert a.shape == images.shape and a.dtype == images.dtype
        assert float(tf.reduce_min(a)) >= 0 and float(tf.reduce_max(a)) <= (
            255 if images.dtype == np.uint8 else 1.0)
        np.testing.assert_array_equal(a, corrupt(images, name, 3, seed=7))
    gray = corrupt(x[..., :1], name, 2, seed=0)  # 1-channel images work too
    assert gray.shape == x[..., :1].shape


def test_seed_changes_random_corruptions_only():
    x = _photos()
    for name in ("gaussian_noise", "glass_blur", "snow", "frost", "fog", "elastic_transform"):
        assert not np.array_equal(corrupt(x, name, 3, seed=0), corrupt(x, name, 3, seed=1)), name
    for name in ("defocus_blur", "contrast", "pixelate", "jpeg_compression"):
        np.testing.assert_array_equal(corrupt(x, name, 3, seed=0), corrupt(x, name, 3, seed=1))


def test_runs_inside_tf_data_and_matches_eager():
    x = _photos().astype(np.float32) / 255.0
    ds = tf.data.Dataset.from_tensor_slices(x).batch(4)
    for name in ("zoom_blur", "motion_blur", "jpeg_compression", "frost"):
        mapped = next(iter(ds.map(lambda b, name=name: corrupt(b, name, 4, seed=3))))
        np.testing.assert_allclose(mapped, corrupt(x, name, 4, seed=3), atol=1e-5)


def test_distortion_grows_with_severity():
    """Monotonic property: the distance to the clean photo grows from severity 1 to 5 and never
    falls by more than 10 % between neighbouring severities."""
    x = _photos(n=4).astype(np.float32) / 255.0
    for name in CORRUPTIONS:
        d = [float(tf.reduce_mean(tf.abs(corrupt(x, name, s, seed=0) - x))) for s in range(1, 6)]
        assert d[4] > d[0], (name, d)
        assert all(b >= 0.9 * a for a, b in zip(d, d[1:], strict=False)), (name, d)


def test_matches_reference_package_where_deterministic():
    """contrast and brightness have no randomness and no size scaling: equal to
    `imagecorruptions` up to 8-bit rounding; noise has the reference's statistics."""
    reference = pytest.importorskip("imagecorruptions")
    x = _photos(size=64, n=2)
    for name in ("contrast", "brightness"):
        ours = np.asarray(corrupt(x, name, 3)).astype(float)
        ref = np.stack([reference.corrupt(im, 3, name) for im in x]).astype(float)
        assert np.abs(ours - ref).max() <= 1.0, name
    gray = np.full([4, 64, 64, 3], 0.5, np.float32)
    noise = np.asarray(corrupt(gray, "gaussian_noise", 2, seed=0)) - 0.5
    assert abs(noise.std() - 0.12) < 0.005


def test_errors_name_the_valid_choices():
    with pytest.raises(CorruptionError, match="valid: gaussian_noise"):
        corrupt(_photos(), "rain", 1)
    with pytest.raises(CorruptionError, match="severity"):
        corrupt(_photos(), "fog", 6)


def test_one_image_is_corrupted_as_a_batch_of_one_also_in_an_unbatched_dataset():
    x = _photos(n=2)
    for name in ("fog", "shot_noise", "jpeg_compression"):
        one = corrupt(x[0], name, 3, seed=1)
        assert one.shape == x.shape[1:] and one.dtype == tf.uint8
        np.testing.assert_array_equal(one, corrupt(x[:1], name, 3, seed=1)[0])
    ds = tf.data.Dataset.from_tensor_slices(x).map(lambda im: corrupt(im, "fog", 3, seed=0))
    assert next(iter(ds)).shape == x.shape[1:]
