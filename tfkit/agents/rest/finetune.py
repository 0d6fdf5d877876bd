"""Fine-tune / distill: train a DecoderLM on (prompt, output) examples, loss on output tokens.

Training runs under a `tf.distribute` strategy chosen by name ("default" =
`tf.distribute.get_strategy()`, "mirrored" = all local GPUs, "tpu" = the attached TPU), in
mixed precision when a GPU is present, and resumes from its last epoch checkpoint.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfkit.agents.tokenizer import WordTokenizer
from tfkit.backend import keras, tf
from tfkit.errors import TfkitError
from tfkit.models import DecoderLM
from tfkit.training import fit_resumable

__all__ = ["ModelSpec", "STRATEGIES", "make_strategy", "build_lm", "encode_examples", "finetune",
           "mixed_precision", "SmoothedTokenLoss", "TokenCrossEntropy"]


@dataclass(frozen=True)
class ModelSpec:
    """The size of one policy model (the paper's L / S / XS)."""

    num_layers: int
    hidden_dim: int
    num_heads: int
    intermediate_dim: int


STRATEGIES = ("default", "mirrored", "tpu")  # `make_strategy`'s names


def make_strategy(name: str | tf.distribute.Strategy = "default") -> tf.distribute.Strategy:
    """"default" (whatever is in scope), "mirrored" (all local GPUs) or "tpu"; a
    `tf.distribute.Strategy` of the user's own (e.g. `MultiWorkerMirroredStrategy`, or a
    `TPUStrategy` on their resolver) is returned as it is."""
    if isinstance(name, tf.distribute.Strategy):
        return name
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise TfkitError(f"unknown strategy {name!r}; use one of {', '.join(STRATEGIES)}")


@contextlib.contextmanager
def mixed_precision(enabled: bool) -> Iterator[None]:
    """Builds models under the "mixed_float16" policy when `enabled` and a GPU is present,
    restoring the previous policy afterwards."""
    if not (enabled and tf.config.list_physical_devices("GPU")):
        yield
        return
    old = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(old)


def build_lm(spec: ModelSpec, vocabulary_size: int, sequence_length: int) -> DecoderLM:
    return DecoderLM(vocabulary_size, sequence_length, spec.num_layers, spec.hidden_dim,
                     spec.num_heads, spec.intermediate_dim)


def encode_examples(examples: Sequence[dict], tokenizer: WordTokenizer, sequence_length: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs, next-token labels, weights) right-padded; weight 1 only on output tokens."""
    n = len(examples)
    encoded = [(tokenizer.encode(ex["prompt"]), tokenizer.encode(ex["output"])) for ex in examples]
    width = min(sequence_length, max(len(p) + len(o) for p, o in encoded))  # trim padding
    x = np.zeros([n, width], np.int32)
    y = np.zeros([n, width], np.int32)
    w = np.zeros([n, width], np.float32)
    for i, (prompt, out) in enumerate(encoded):
        out = (out + [tokenizer.eos_id])[:width]  # an over-long output keeps its start
        keep = width + 1 - len(out)  # >= 1 prompt token: the one predicting out[0]
        prompt = prompt[len(prompt) - keep:] if len(prompt) > keep else prompt
        seq = prompt + out
        x[i, :len(seq) - 1] = seq[:-1]
        y[i, :len(seq) - 1] = seq[1:]
        w[i, max(len(prompt) - 1, 0):len(seq) - 1] = 1.0  # no prompt: out[0] is unpredicted
    return x, y, w


@keras.utils.register_keras_serializable(package="tfkit")
class SmoothedTokenLoss(keras.losses.Loss):
    """Per-token cross-entropy from logits, the target smoothed towards uniform.

    Keras applies the (output-token) sample weights; `label_smoothing=0` is plain sparse
    cross-entropy. Registered, so a model compiled with it saves and loads.

    Args:
        label_smoothing: mass moved from the target token to a uniform distribution.

    Example:
        >>> loss = SmoothedTokenLoss(0.1)
        >>> float(loss(tf.constant([[1]]), tf.constant([[[0.0, 9.0, 0.0]]]))) > 0.5
        True
    """

    def __init__(self, label_smoothing: float = 0.1, name: str = "smoothed_token_loss",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        logp = tf.nn.log_softmax(tf.cast(y_pred, tf.float32))
        nll = -tf.gather(logp, tf.cast(y_true, tf.int32), batch_dims=2)
        return (1.0 - self.label_smoothing) * nll - self.label_smoothing * tf.reduce_mean(
            logp, -1)

    def get_config(self) -> dict:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


@keras.utils.register_keras_serializable(package="tfkit")
class TokenCrossEntropy(keras.losses.SparseCategoricalCrossentropy):
    """Sparse cross-entropy with the logits cast to float32 first.

    Under "mixed_float16" a DecoderLM's logits are float16, and Keras would compute and sum
    the per-token losses in float16: a batch's sum over its output tokens rounds, and passes
    float16's 65,504 (inf) at a few thousand tokens. For float32 logits the cast does nothing.
    """

    def __init__(self, from_logits: bool = True, **kwargs):
        super().__init__(from_logits=from_logits, **kwargs)

    def call(self, y_true, y_pred):
        return super().call(y_true, tf.cast(y_pred, tf.float32))


def finetune(examples: Sequence[dict], tokenizer: WordTokenizer, spec: ModelSpec, *,
             sequence_length: int, epochs: int, directory: str | Path, batch_size: int = 32,
             learning_rate: float = 2e-3, init_from: keras.Model | None = None,
             strategy: str | tf.distribute.Strategy = "default", mixed: bool = True,
             seed: int = 0,
             label_smoothing: float = 0.0, log: Callable[[str], None] | None = None
             ) -> tuple[DecoderLM, dict]:
    """A new DecoderLM of size `spec` trained on `examples` (optionally warm-started from
    `init_from`, a model of the same size); returns (model, history). `strategy` is a name of
    `make_strategy` or a strategy object; each step takes `batch_size` examples per replica.
    `label_smoothing` > 0 keeps the policy from becoming near-deterministic on its training
    questions; `log` is told when the fit resumes from `directory`."""
    if not examples:
        raise TfkitError("no fine-tuning examples (every step failed to parse?)")
    x, y, w = encode_examples(examples, tokenizer, sequence_length)
    strat = make_strategy(strategy)
    with mixed_precision(mixed), strat.scope():
        model = build_lm(spec, tokenizer.vocabulary_size, sequence_length)
        if init_from is not None:
            model.set_weights(init_from.get_weights())
        global_batch = batch_size * strat.num_replicas_in_sync  # each replica: batch_size
        steps = epochs * int(np.ceil(len(x) / global_batch))  # the schedule's length
        schedule = keras.optimizers.schedules.CosineDecay(learning_rate, max(1, steps),
                                                          alpha=0.05)
        model.compile(optimizer=keras.optimizers.Adam(schedule),
                      loss=(SmoothedTokenLoss(label_smoothing) if label_smoothing else
                            TokenCrossEntropy(from_logits=True)),
                      weighted_metrics=[])
    data = (tf.data.Dataset.from_tensor_slices((x, y, w))
            .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
            .batch(global_batch).prefetch(2))
    history = fit_resumable(model, data, epochs=epochs, directory=directory, log=log, verbose=0)
    return model, history
