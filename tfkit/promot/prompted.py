"""A causal LM with a soft prompt in front, built from the LM's own layers.

`PromptedLM(lm, soft_prompt)` maps token ids [batch, length] to next-token logits
[batch, length, vocabulary] like the LM itself, but runs the LM's layers on
`[prompt; token embeddings]` (padding mask extended by the prompt; positions as the prompt's
`positions` says: by default the text keeps its own positions) and drops the prompt's logits.
It shares every weight with `lm`, so training it trains `lm`, and `lm` used on its own is the
same model with the prompt removed.

Supported LMs: `tfkit.models.DecoderLM`, and keras-nlp GPT-2 style backbones (`GPT2Backbone`, or a
`GPT2CausalLM` whose backbone is used; layers "token_embedding", "position_embedding",
"embeddings_add", "embeddings_dropout", "transformer_layer_i", "layer_norm"), e.g. loaded with
`keras_nlp.models.GPT2Backbone.from_preset(local_dir)`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from tfkit.backend import keras, tf
from tfkit.errors import TfkitError
from tfkit.layers import SoftPrompt

__all__ = ["PromptedLM", "UnsupportedModelError", "text_positions", "token_embeddings"]


class UnsupportedModelError(TfkitError, TypeError):
    """The model is neither a tfkit DecoderLM nor a GPT-2 style keras-nlp backbone."""


def _layer_names(model: keras.Model) -> set[str]:
    return {layer.name for layer in model.layers}


def _unwrap(lm: keras.Model) -> keras.Model:
    """A keras-nlp task model (GPT2CausalLM) stands for its backbone."""
    return getattr(lm, "backbone", lm)


def _parts(lm: keras.Model) -> tuple[keras.layers.Layer, Callable, Callable]:
    """(token embedding layer, `positions(embeddings, padding_mask) -> embeddings + positions`,
    `body(embeddings, padding_mask) -> logits`) of a supported LM."""
    names = _layer_names(lm)
    if {"token_embedding", "position_embedding", "block_0", "final_norm", "lm_head"} <= names:
        blocks = [lm.get_layer(f"block_{i}") for i in range(sum(n.startswith("block_")
                                                                   for n in names))]

        def body(x, mask):
            for block in blocks:
                x = block(x, padding_mask=mask)
            return lm.get_layer("lm_head")(lm.get_layer("final_norm")(x))

        table = lm.get_layer("position_embedding")

        def positions(x, mask):
            if "positions" in names:  # DecoderLM counts real tokens: left padding shifts nothing
                return table(x, positions=lm.get_layer("positions")(mask))
            return table(x)

        return lm.get_layer("token_embedding"), positions, body
    gpt2 = {"token_embedding", "position_embedding", "embeddings_add", "embeddings_dropout",
            "transformer_layer_0", "layer_norm"}
    if gpt2 <= names:
        layers = [lm.get_layer(f"transformer_layer_{i}")
                  for i in range(sum(n.startswith("transformer_layer_") for n in names))]
        embedding = lm.get_layer("token_embedding")

        def positions(x, mask):  # GPT-2 numbers positions 0, 1, 2, … whatever the padding
            return lm.get_layer("embeddings_add")((x, lm.get_layer("position_embedding")(x)))

        def body(x, mask):
            x = lm.get_layer("embeddings_dropout")(x)
            for layer in layers:
                x = layer(x, decoder_padding_mask=mask)
            return embedding(lm.get_layer("layer_norm")(x), reverse=True)

        return embedding, positions, body
    raise UnsupportedModelError(
        f"{type(lm).__name__} {lm.name!r} is not a tfkit DecoderLM or a GPT-2 style keras-nlp "
        "backbone (needs layers token_embedding, position_embedding and blocks)")


def text_positions(model: keras.Model) -> int | None:
    """How many tokens of text `model` (a `PromptedLM`, `DecoderLM` or GPT-2 backbone) can take:
    its position table's size, less a "shifted" prompt's length; None if unknown."""
    shift = 0
    if isinstance(model, PromptedLM):
        prompt = model.soft_prompt
        shift = prompt.num_tokens if prompt is not None and prompt.positions == "shifted" else 0
        model = model.lm
    lm = _unwrap(model)
    size = getattr(lm, "sequence_length", None) or getattr(lm, "max_sequence_length", None)
    return None if size is None else int(size) - shift


def token_embeddings(lm: keras.Model) -> tf.Tensor:
    """The LM's token-embedding table [vocabulary, hidden] (for prompt initialization)."""
    return _parts(_unwrap(lm))[0].embeddings


@keras.utils.register_keras_serializable(package="tfkit")
class PromptedLM(keras.Model):
    """Token ids → next-token logits of `lm` with `soft_prompt` prepended (None = no prompt).

    Args:
        lm: a tfkit `DecoderLM` or a keras-nlp GPT-2 backbone / causal LM; weights are shared.
        soft_prompt: a `tfkit.layers.SoftPrompt`, or None for the bare LM behind the same
            token-ids interface.
        pad_id: token id treated as padding (never attended); None (default) takes the LM's
            own `pad_id` (a tfkit `DecoderLM`'s), else 0, so `PromptedLM(lm)` equals `lm`.

    Example:
        >>> from tfkit.models import DecoderLM
        >>> lm = DecoderLM(vocabulary_size=20, sequence_length=16, num_layers=1, hidden_dim=8,
        ...                num_heads=2, intermediate_dim=16)
        >>> PromptedLM(lm, SoftPrompt(4))(tf.ones([2, 5], tf.int32)).shape
        TensorShape([2, 5, 20])
    """

    def __init__(self, lm: keras.Model, soft_prompt: SoftPrompt | None = None,
                 pad_id: int | None = None, **kwargs):
        if pad_id is None:  # the LM's own padding id (keras-nlp backbones have none: 0)
            pad_id = int(getattr(_unwrap(lm), "pad_id", 0))
        embedding, positions, body = _parts(_unwrap(lm))
        if soft_prompt is not None:  # a prompt file saved for a model of another width
            soft_prompt.check_width(getattr(embedding, "output_dim", None))
        token_ids = keras.Input((None,), dtype="int32", name="token_ids")
        mask = tf.not_equal(token_ids, pad_id)
        x = embedding(token_ids)
        shifted = soft_prompt is not None and soft_prompt.positions == "shifted"
        if not shifted:
            x = positions(x, mask)  # the text keeps the positions it has without a prompt
        if soft_prompt is not None:
            x, mask = soft_prompt(x, padding_mask=mask)
        if shifted:
            x = positions(x, mask)  # the prompt at positions 0 … p-1, the text after it
        logits = body(x, mask)
        if soft_prompt is not None:
            logits = logits[:, soft_prompt.num_tokens:]
        super().__init__(inputs=token_ids, outputs=logits, **kwargs)
        self.lm = lm
        self.soft_prompt = soft_prompt
        self.pad_id = pad_id

    def call(self, inputs, training=None, mask=None):
        """The logits; text longer than the LM's positions (see `text_positions`) raises a
        ValueError (an InvalidArgumentError where the length is only known when run)."""
        capacity = text_positions(self)
        named = isinstance(inputs, Mapping)  # {"token_ids": ...}, as DecoderLM also takes
        ids = inputs.get("token_ids") if named else inputs
        if capacity is not None and ids is not None:
            ids = tf.convert_to_tensor(ids)
            length = ids.shape[1] if ids.shape.rank == 2 else None
            message = (f"{self.name}: the token ids have {{}} tokens, but {self.lm.name!r} has "
                       f"{capacity} positions for text (its position table, less a 'shifted' "
                       "prompt's length): use shorter inputs or a model with more positions")
            if length is not None:
                if length > capacity:
                    raise ValueError(message.format(length))
            else:
                check = tf.debugging.assert_less_equal(
                    tf.shape(ids)[1], capacity, message=message.format("more"))
                with tf.control_dependencies([check]):
                    ids = tf.identity(ids)
            inputs = {**inputs, "token_ids": ids} if named else ids
        return super().call(inputs, training=training, mask=mask)

    def get_config(self) -> dict:
        serialize = keras.saving.serialize_keras_object
        return {"lm": serialize(self.lm), "pad_id": self.pad_id, "name": self.name,
                "soft_prompt": None if self.soft_prompt is None else serialize(self.soft_prompt)}

    @classmethod
    def from_config(cls, config: dict) -> PromptedLM:
        config = dict(config)
        config["lm"] = keras.saving.deserialize_keras_object(config["lm"])
        if config.get("soft_prompt") is not None:
            config["soft_prompt"] = keras.saving.deserialize_keras_object(config["soft_prompt"])
        return cls(**config)
