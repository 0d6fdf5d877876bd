"""tfkit's Keras layers (all registered as serializable under the "tfkit" package)."""

from tfkit.layers.class_token import ClassToken
from tfkit.layers.feed_forward import FeedForward
from tfkit.layers.position_embedding import PositionEmbedding
from tfkit.layers.top_k import TopKActivation
from tfkit.layers.transformer_block import TransformerBlock

__all__ = ["ClassToken", "FeedForward", "PositionEmbedding", "TopKActivation", "TransformerBlock"]
from tfkit.layers.soft_prompt import SoftPrompt  # noqa: E402

__all__ += ["SoftPrompt"]
