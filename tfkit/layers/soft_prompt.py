"""Soft prompt: trainable vectors prepended to a sequence of token embeddings (prompt tuning)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tfkit.backend import keras, tf

__all__ = ["SoftPrompt"]


@keras.utils.register_keras_serializable(package="tfkit")
class SoftPrompt(keras.layers.Layer):
    """Prepends `num_tokens` trainable vectors to token embeddings [batch, length, hidden].

    Called with `padding_mask` it also returns the mask extended by `num_tokens` True entries.
    Removing the layer leaves the model unchanged. `positions` tells the model that hosts the
    prompt (`tfkit.promot.PromptedLM`) where to add absolute position embeddings:
    "unshifted" adds them to the token embeddings before this layer, so the text keeps the
    positions it has without a prompt and the prompt vectors (free parameters) get none — as in
    relative-position models such as the paper's T5, the prompt does not move the text;
    "shifted" adds them after this layer, so the prompt occupies positions 0 … num_tokens-1 and
    the text follows it (prompt plus text must then fit the position table).

    Initializations (Lester et al., 2021): `initializer="uniform"` draws from
    U(-init_range, init_range) (0.5 in the ProMoT paper); `init_from_vocabulary(table)` copies
    randomly sampled rows of the token-embedding table; `init_from_text(table, ids)` copies the
    embeddings of a natural-language prompt. `save_prompt` / `load_prompt` keep the prompt in a
    small `.npz` file separate from the model.

    Args:
        num_tokens: prompt length p.
        initializer: "uniform" (U(±init_range)) or any Keras initializer name.
        init_range: half-width of the uniform initializer.
        positions: "unshifted" (default) or "shifted", see above.

    Call args:
        x: [batch, length, hidden] token embeddings.
        padding_mask: optional [batch, length] mask (bool or 0/1); when given the call returns
            `(x_with_prompt, extended_mask)`.

    Example:
        >>> prompt = SoftPrompt(4)
        >>> prompt(tf.zeros([2, 5, 8])).shape
        TensorShape([2, 9, 8])
        >>> x, mask = prompt(tf.zeros([2, 5, 8]), padding_mask=tf.ones([2, 5], tf.bool))
        >>> mask.shape
        TensorShape([2, 9])
    """

    def __init__(self, num_tokens: int, initializer: str = "uniform", init_range: float = 0.5,
                 positions: str = "unshifted", **kwargs):
        super().__init__(**kwargs)
        if positions not in ("unshifted", "shifted"):
            raise ValueError(f"positions must be 'unshifted' or 'shifted', not {positions!r}")
        if int(num_tokens) != num_tokens or num_tokens < 0:
            raise ValueError(f"num_tokens must be a non-negative integer, not {num_tokens!r}")
        if initializer != "uniform":
            try:
                keras.initializers.get(initializer)
            except ValueError as e:
                raise ValueError(f"initializer must be 'uniform' or a Keras initializer name, "
                                 f"not {initializer!r}") from e
        self.num_tokens = int(num_tokens)
        self.initializer = initializer
        self.init_range = float(init_range)
        self.positions = positions

    def build(self, input_shape):
        if self.initializer == "uniform":
            init = keras.initializers.RandomUniform(-self.init_range, self.init_range)
        else:
            init = keras.initializers.get(self.initializer)
        self.prompt = self.add_weight(name="prompt", shape=(self.num_tokens,
                                                            int(input_shape[-1])),
                                      initializer=init)
        super().build(input_shape)

    def call(self, x: tf.Tensor, padding_mask: tf.Tensor | None = None):
        self.check_width(x.shape[-1])
        batch = tf.shape(x)[0]
        prompt = tf.tile(tf.cast(self.prompt, x.dtype)[None], [batch, 1, 1])
        out = tf.concat([prompt, x], axis=1)
        if padding_mask is None:
            return out
        ones = tf.ones([batch, self.num_tokens], dtype=padding_mask.dtype)
        return out, tf.concat([ones, padding_mask], axis=1)

    def compute_output_shape(self, input_shape):
        length = None if input_shape[1] is None else input_shape[1] + self.num_tokens
        return (input_shape[0], length, input_shape[2])

    def check_width(self, hidden_dim: int | None) -> None:
        """Raises ValueError if this built prompt's vectors are not `hidden_dim` wide (e.g. a
        prompt file saved for another model)."""
        if self.built and hidden_dim is not None and int(hidden_dim) != self.prompt.shape[-1]:
            raise ValueError(f"soft prompt {self.name!r} has vectors of width "
                             f"{self.prompt.shape[-1]}, not the model's hidden size "
                             f"{int(hidden_dim)}: a prompt only fits the model (hidden size) it "
                             "was trained for")

    # ---- initialization from the model's vocabulary -------------------------------------

    def _table(self, embeddings) -> np.ndarray:
        table = np.asarray(embeddings)
        if table.ndim != 2:
            raise ValueError(f"embeddings must be a [vocabulary, hidden] table, got shape "
                             f"{table.shape}")
        if not self.built:
            self.build((None, None, table.shape[-1]))
        self.check_width(table.shape[-1])
        return table

    def init_from_vocabulary(self, embeddings: np.ndarray | tf.Tensor, seed: int = 0,
                             exclude: tuple[int, ...] = (0,)) -> None:
        """Sets the prompt to `num_tokens` distinct rows sampled from the embedding table."""
        table = self._table(embeddings)
        ids = np.setdiff1d(np.arange(len(table)), np.asarray(exclude, dtype=np.int64))
        rows = np.random.default_rng(seed).choice(ids, self.num_tokens,
                                                  replace=len(ids) < self.num_tokens)
        self.prompt.assign(table[rows])

    def init_from_text(self, embeddings: np.ndarray | tf.Tensor, token_ids: Sequence[int]
                       ) -> None:
        """Sets the prompt to the embeddings of `token_ids` (repeated/truncated to fit)."""
        table = self._table(embeddings)
        ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
        if ids.size == 0:
            raise ValueError("token_ids is empty: give the token ids of the prompt text")
        if ids.min() < 0 or ids.max() >= len(table):
            bad = sorted({int(i) for i in ids if not 0 <= i < len(table)})
            raise ValueError(f"token_ids {bad} are outside the vocabulary of {len(table)} "
                             "embeddings")
        ids = np.resize(ids, self.num_tokens)
        self.prompt.assign(table[ids])

    # ---- small separate files -------------------------------------------------------------

    def save_prompt(self, path: str | os.PathLike) -> Path:
        """Writes the prompt vectors and this layer's config to `path` (.npz)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            np.savez(f, prompt=self.prompt.numpy(), config=json.dumps(self.get_config()))
        return path

    @classmethod
    def load_prompt(cls, path: str | os.PathLike, **overrides) -> SoftPrompt:
        """A built `SoftPrompt` holding the vectors saved by `save_prompt`.

        The layer follows the precision policy it is loaded under (a prompt trained under
        "mixed_float16" computes in float32 in a float32 model), unless `dtype=` is given."""
        try:
            with np.load(path) as data:
                saved = json.loads(str(data["config"]))
                saved.pop("dtype", None)  # the policy of the process that saved it
                config = {**saved, **overrides}
                values = data["prompt"]
        except FileNotFoundError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path} is not a soft-prompt file written by "
                             f"SoftPrompt.save_prompt ({e})") from e
        layer = cls.from_config(config)
        if layer.num_tokens != len(values):
            raise ValueError(f"{path} holds {len(values)} prompt vectors, not "
                             f"num_tokens={layer.num_tokens}: load it with num_tokens="
                             f"{len(values)} (or leave num_tokens out)")
        layer.build((None, None, values.shape[-1]))
        layer.prompt.assign(values)
        return layer

    def get_config(self) -> dict:
        return {**super().get_config(), "num_tokens": self.num_tokens,
                "initializer": self.initializer, "init_range": self.init_range,
                "positions": self.positions}
