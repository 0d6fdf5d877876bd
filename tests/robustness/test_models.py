import numpy as np

from tests.helpers import run_layer_test, run_model_saving_test
from tfkit.backend import tf
from tfkit.models import ResidualBlock, ResNet, ViT, resnet20, resnet50, resnet56


def test_residual_block_layer():
    run_layer_test(ResidualBlock, {"filters": 8, "strides": 2}, tf.random.uniform([2, 8, 8, 4]),
                   expected_output_shape=(2, 4, 4, 8))
    run_layer_test(ResidualBlock, {"filters": 2, "bottleneck": True},
                   tf.random.uniform([2, 6, 6, 8]), expected_output_shape=(2, 6, 6, 8))


def test_resnet_roundtrip_any_input_size_and_layouts():
    model = ResNet((1, 1), (4, 8), num_classes=3, channels=1)
    assert ResNet.from_config(model.get_config()).get_config() == model.get_config()
    run_model_saving_test(model, tf.random.uniform([2, 12, 12, 1]))
    assert model(tf.zeros([1, 20, 16, 1])).shape == (1, 3)  # any input size
    assert [b.name for b in model.blocks] == ["block_0", "block_1"]
    assert resnet20().count_params() == 274_042  # 0.27M as in He et al.
    assert resnet56().num_layers == 27
    assert abs(resnet50().count_params() - 25.6e6) < 0.1e6  # the standard ResNet-50 size


def test_vit_resize_inputs_roundtrip():
    model = ViT(image_size=8, patch_size=4, num_layers=1, hidden_dim=8, num_heads=2,
                intermediate_dim=16, channels=1, resize_inputs=True)
    assert model(tf.zeros([2, 20, 12, 1])).shape == (2, 10)
    run_model_saving_test(model, tf.random.uniform([2, 16, 16, 1]))
    plain = ViT(image_size=8, patch_size=4, num_layers=1, hidden_dim=8, num_heads=2,
                intermediate_dim=16, channels=1)
    assert plain.input_shape == (None, 8, 8, 1) and not plain.get_config()["resize_inputs"]
    np.testing.assert_array_equal(plain.get_config()["image_size"], 8)
