"""FGSM and PGD attacks (L-inf and L2, random start) on a classifier's logits.

    >>> attack = PGD(epsilon=2 / 255, norm="linf", steps=5)
    >>> predict_fn = lambda x: tf.reduce_mean(x, axis=[1, 2]) * [[4.0, -4.0]]  # 2 classes
    >>> images, labels = tf.random.uniform([3, 8, 8, 1], seed=1), tf.constant([0, 0, 1])
    >>> x_adv = attack(predict_fn, images, labels, seed=0)
    >>> float(tf.reduce_max(tf.abs(x_adv - images))) <= 2 / 255 + 1e-6
    True

`predict_fn` maps float [0, 1] images to logits and must be differentiable in TensorFlow (a Keras
model, or a loaded SavedModel's serving function). Adversarial images stay in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from tfkit.backend import tf
from tfkit.errors import TfkitError
from tfkit.robustness.corruptions import seed_pair

__all__ = ["FGSM", "PGD", "input_gradient"]

PredictFn = Callable[[tf.Tensor], tf.Tensor]


def _power_of_two_scale(g: tf.Tensor) -> tf.Tensor:
    """Per row of `g` [B, K]: the power of two that brings its largest |value| into [1, 2)
    (1 for an all-zero row). Multiplying by a power of two is exact in floating point."""
    top = tf.reduce_max(tf.abs(g), axis=-1, keepdims=True)
    exponent = tf.floor(tf.math.log(tf.where(top > 0, top, 1.0)) / tf.math.log(2.0))
    exponent = tf.cast(tf.clip_by_value(-exponent, -126.0, 127.0), tf.int32)
    return tf.bitcast((exponent + 127) * (1 << 23), tf.float32)  # 2 ** exponent, exactly


def input_gradient(predict_fn: PredictFn, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """d(cross-entropy of logits)/d(images): the direction that increases the loss, per image
    (each image's gradient multiplied by a power of two: its signs and direction are the
    loss's, but a model computing in float16, e.g. under `mixed_float16`, gets a loss
    gradient of order 1 to backpropagate instead of one that underflows to 0 on confidently
    classified images)."""
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        logits = tf.cast(predict_fn(x), tf.float32)
        loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
            tf.cast(y, tf.int64), logits))
    d_logits = tape.gradient(loss, logits)  # [B, K] in float32; each row is one image's
    grad = None
    if d_logits is not None:
        d_logits = d_logits * _power_of_two_scale(d_logits)
        grad = tape.gradient(logits, x, output_gradients=d_logits)
    del tape
    if grad is None:
        raise TfkitError("the model is not differentiable with respect to its input; "
                         "adversarial attacks need a TensorFlow/Keras model")
    return grad


def _l2(t: tf.Tensor) -> tf.Tensor:
    return tf.sqrt(tf.reduce_sum(tf.square(t), axis=[1, 2, 3], keepdims=True) + 1e-12)


def _project(delta: tf.Tensor, epsilon: float, norm: str) -> tf.Tensor:
    if norm == "linf":
        return tf.clip_by_value(delta, -epsilon, epsilon)
    return delta * tf.minimum(1.0, epsilon / _l2(delta))


def _ascent(grad: tf.Tensor, norm: str) -> tf.Tensor:
    return tf.sign(grad) if norm == "linf" else grad / _l2(grad)


@dataclass(frozen=True)
class PGD:
    """Projected gradient descent (Madry et al. 2018) within an L-inf or L2 ball.

    Args:
        epsilon: radius of the ball (on [0, 1] pixels; L2 over the whole image); a float or a
            scalar tensor (one traced attack then serves every radius).
        norm: "linf" or "l2".
        steps: gradient steps.
        step_size: per-step move (float or scalar tensor); None = 2.5 * epsilon / steps (Madry
            et al.'s rule of thumb).
        random_start: start from a uniform point in the ball instead of the clean image.
    """

    epsilon: float
    norm: Literal["linf", "l2"] = "linf"
    steps: int = 10
    step_size: float | None = None
    random_start: bool = True

    def __post_init__(self):
        if self.norm not in ("linf", "l2"):
            raise TfkitError(f"norm must be 'linf' or 'l2', got {self.norm!r}")

    def _start(self, x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        if not self.random_start:
            return tf.zeros_like(x)
        if self.norm == "linf":
            return tf.random.stateless_uniform(tf.shape(x), seed, -self.epsilon, self.epsilon)
        direction = tf.random.stateless_normal(tf.shape(x), seed)
        radius = tf.random.stateless_uniform(tf.concat([tf.shape(x)[:1], [1, 1, 1]], 0),
                                             seed + 1) * self.epsilon
        return direction / _l2(direction) * radius

    def __call__(self, predict_fn: PredictFn, x: tf.Tensor, y: tf.Tensor,
                 seed: int | tf.Tensor = 0) -> tf.Tensor:
        x = tf.convert_to_tensor(x, tf.float32)
        step = self.step_size if self.step_size is not None else 2.5 * self.epsilon / self.steps

        def body(i, delta):  # one ascent step, then projection back into the ball
            adv = tf.clip_by_value(x + delta, 0.0, 1.0)
            delta = adv - x + step * _ascent(input_gradient(predict_fn, adv, y), self.norm)
            return i + 1, _project(delta, self.epsilon, self.norm)

        # A while loop (not a Python loop) keeps the traced graph one step long.
        _, delta = tf.while_loop(lambda i, _: i < self.steps, body,
                                 [tf.constant(0), self._start(x, seed_pair(seed))])
        return tf.clip_by_value(x + delta, 0.0, 1.0)


@dataclass(frozen=True)
class FGSM:
    """Fast gradient sign method (Goodfellow et al. 2015): one step of size epsilon (L-inf), or
    its L2 analogue (one normalised-gradient step of length epsilon)."""

    epsilon: float
    norm: Literal["linf", "l2"] = "linf"

    def __call__(self, predict_fn: PredictFn, x: tf.Tensor, y: tf.Tensor,
                 seed: int | tf.Tensor = 0) -> tf.Tensor:
        return PGD(self.epsilon, self.norm, steps=1, step_size=self.epsilon,
                   random_start=False)(predict_fn, x, y, seed)
