"""`takes_pixels`: where a user's model scales 0..255 pixels itself."""

import numpy as np
import pytest

from tfkit.backend import keras
from tfkit.model_io import model_inputs, takes_pixels

L = keras.layers


def _model(*layers):
    return keras.Sequential([keras.Input((8, 8, 1)), *layers, L.Flatten(), L.Dense(3)])


@pytest.mark.parametrize("layers, expected", [
    ([L.Rescaling(1 / 255)], True),
    ([L.RandomFlip("horizontal"), L.Rescaling(1 / 255)], True),  # augmentation, then scaling
    ([L.Resizing(6, 6), L.RandomRotation(0.1), L.Rescaling(1 / 127.5, offset=-1)], True),
    ([keras.Sequential([L.RandomFlip(), L.Rescaling(1 / 255)])], True),  # nested preprocessing
    ([keras.Sequential([L.RandomFlip()]), L.Rescaling(1 / 255)], True),
    ([L.Rescaling(2.0, offset=-1)], False),  # [0, 1] -> [-1, 1]: reads [0, 1] images
    ([L.Conv2D(2, 3), L.Rescaling(1 / 255)], False),  # not at the start: not pixel scaling
    ([keras.Sequential([L.Conv2D(2, 3)]), L.Rescaling(1 / 255)], False),
    ([], False),
])
def test_a_rescaling_after_augmentation_or_nested_still_reads_pixels(layers, expected):
    assert takes_pixels(_model(*layers)) is expected


def test_pixels_reach_a_model_that_augments_before_scaling_unscaled():
    model = _model(L.RandomFlip("horizontal"), L.Rescaling(1 / 255))
    pixels = np.full((1, 8, 8, 1), 200, np.uint8)
    np.testing.assert_allclose(model_inputs(model, pixels).numpy(), 200.0)
