import numpy as np
import pytest

from tfkit.sparsity.evaluation import (
    evaluate_classifier,
    expected_calibration_error,
    gaussian_blur,
    gaussian_noise,
    symmetric_label_noise,
)


def test_ece_by_hand():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2]])
    labels = np.array([0, 1, 0])
    # bins: 0.6 -> acc 0, conf 0.6; 0.8 -> acc 1, conf 0.8; 0.9 -> acc 1, conf 0.9
    assert expected_calibration_error(probs, labels) == pytest.approx((0.6 + 0.2 + 0.1) / 3)


def test_label_noise_flips_the_requested_fraction_to_other_classes():
    y = np.arange(10_000) % 10
    noisy = symmetric_label_noise(y, 0.4, 10, seed=0)
    assert abs((noisy != y).mean() - 0.4) < 0.02
    assert noisy.min() >= 0 and noisy.max() <= 9


def test_corruptions_grow_with_severity_and_evaluator_yields_names():
    x = np.random.default_rng(0).random((4, 8, 8, 3)).astype("float32")
    d1 = np.abs(gaussian_noise(x, 1) - x).mean()
    d5 = np.abs(gaussian_noise(x, 5) - x).mean()
    b1, b5 = (np.abs(gaussian_blur(x, s) - x).mean() for s in (1, 5))
    assert 0 < d1 < d5 and 0 < b1 < b5
    predict = lambda batch: batch.reshape(len(batch), -1)[:, :10]
    names = dict(evaluate_classifier(predict, x, np.zeros(4, int), severities=(1, 2)))
    assert set(names) == {"accuracy", "ece", "gaussian_noise/1", "gaussian_noise/2",
                          "gaussian_blur/1", "gaussian_blur/2"}


@pytest.mark.parametrize("severity", [0, 6, -1, 2.5])
def test_corruption_severity_outside_1_to_5_is_refused(severity):
    images = np.zeros((1, 4, 4, 1), np.float32)
    for corrupt in (gaussian_noise, gaussian_blur):
        with pytest.raises(ValueError, match="severity must be 1, 2, 3, 4 or 5"):
            corrupt(images, severity)
