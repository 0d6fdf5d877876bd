"""tfkit's Keras models: functional graphs built in `keras.Model` subclasses."""

from tfkit.models.decoder_lm import DecoderLM
from tfkit.models.resnet import ResidualBlock, ResNet, resnet20, resnet50, resnet56
from tfkit.models.vit import ViT

__all__ = ["DecoderLM", "ResNet", "ResidualBlock", "ViT", "resnet20", "resnet50", "resnet56"]
