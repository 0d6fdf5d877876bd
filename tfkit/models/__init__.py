"""tfkit's Keras models: functional graphs built in `keras.Model` subclasses."""

from tfkit.models.decoder_lm import DecoderLM
from tfkit.models.vit import ViT

__all__ = ["DecoderLM", "ViT"]
