"""One FedMD party: its own Keras model, private data, and compiled training steps.

Party-side work (transfer learning, computing logits, digesting the consensus, revisiting the
private data) runs in Python/TensorFlow with `tf.function`-compiled steps, outside any TFF
computation: heterogeneous Keras models have different TFF types, so they cannot be one
federated value. Only the class scores on the public alignment set cross TFF.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import numpy as np

from tfkit.backend import keras, tf
from tfkit.federated.fedmd.bit_dropout import BITS, bit_dropout_calls, dropout_layers
from tfkit.model_io import ends_in_softmax, takes_pixels, to_model_pixels

__all__ = ["Party", "to_float_images"]


def to_float_images(x: np.ndarray) -> np.ndarray:
    """uint8 images (0..255) -> float32 in [0, 1]; float input is passed through. Other integer
    (or bool) images are refused: int64 pixels 0..255 (e.g. read from a CSV) would go in
    unscaled beside uint8 images that are scaled, silently 255x apart."""
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"images of dtype {x.dtype}: give uint8 pixels 0..255 (scaled to "
                         "[0, 1]) or floats (used as they are), e.g. x / x.max() as floats")
    return x.astype(np.float32)


def whole_labels(y: np.ndarray) -> bool:
    """Whether `y` holds class labels: integers, bools, or floats that are whole numbers."""
    y = np.asarray(y)
    return not y.size or np.issubdtype(y.dtype, np.integer) or y.dtype == bool or (
        np.issubdtype(y.dtype, np.floating) and bool(np.all(y == np.round(y))))


def _model_problem(model: keras.Model) -> str | None:
    """Why `model` cannot be a FedMD party (one image input, one [batch, classes] output of
    logits), or None."""
    if not getattr(model, "_is_graph_network", False):  # Functional or built Sequential
        return (f"its model has no fixed input shape ({type(model).__name__}, subclassed or not "
                "built); wrap it: inputs = keras.Input(image_shape); "
                "keras.Model(inputs, net(inputs))")
    if len(model.inputs) != 1:
        return (f"its model takes {len(model.inputs)} inputs; a FedMD party's model takes one "
                "batch of images")
    if len(model.outputs) != 1 or isinstance(model.output_shape, dict):
        return (f"its model outputs {model.output_shape}; a FedMD party's model outputs one "
                "[batch, classes] tensor of class scores")
    if len(model.output_shape) != 2 or model.output_shape[-1] is None:
        return (f"its model outputs shape {model.output_shape}, not (None, classes): one score "
                "per class for every image (add a Flatten or pooling before the last Dense)")
    if ends_in_softmax(model):
        return ("its model ends in a softmax; FedMD exchanges and fits class scores (logits): "
                "drop the final softmax activation")
    return None


class Party:
    """A FedMD participant.

    Args:
        name: a label used in logs and reports.
        model: any Keras model mapping images to `num_classes` logits (no softmax).
        x_private: the party's private images; `y_private` their integer labels.
        learning_rate: Adam learning rate for both objectives (the paper: 1e-3).
        private_batch_size: batch size on private data (the authors' code: 32 when pooled,
            5 per party on the tiny balanced sets; we default to 32 and cap at the data size).
        digest_batch_size: batch size when fitting the consensus (the paper: 256).
        predict_batch_size: batch size for computing logits (no effect on values). 64: on CPU
            it is 25-30 % faster than 256 (activations stay in cache), measured on the paper CNNs.
        digest_batch_norm: how BatchNormalization layers run while digesting the consensus.
            "batch" (Keras `fit`, as the authors' code): normalize with the public batch's
            statistics and update the moving statistics. "moving": normalize with the moving
            statistics, as when the logits were computed, and leave them unchanged, so the
            digest fits the consensus with the same function that produced it (see
            docs/fedmd.md: with "batch", public and private images with different statistics
            make every round inflate the logits).
        digest_micro_batch_size: None (default) computes each digest step on the whole batch.
            An integer m splits every digest batch into micro-batches of m images and averages
            their gradients (weighted by size) before the one Adam step: the same update up to
            float summation order, but activations small enough to stay in cache (1/4-width
            paper CNNs, one thread: m=16 made a 2-layer CNN's digest 1.3-1.4x faster). Only
            with `digest_batch_norm="moving"` (batch statistics depend on the batch). Dropout
            masks are drawn per micro-batch: the same distribution, other draws.
        dropout_bits: None (default) leaves the model's `Dropout` layers to Keras (one float32
            random number per unit). 8 or 16: while this party trains (private epochs and
            digest), its plain `Dropout` layers draw their masks from that many random bits per
            unit (`bit_dropout`: 4 or 2 units per 32-bit number), so the digest step runs
            faster (1/4-width paper CNNs, one thread: 1.35-1.65x with 8 bits); the drop rate is
            rounded to a multiple of 2**-bits (0.2 -> 0.1992 with 8 bits, exact to 1.5e-5 with
            16). The model is unchanged (saved and evaluated with Keras' layer); the masks'
            generator state is part of `get_state`, so a resumed run draws the same masks.
        jit_compile: compile training steps with XLA.
        seed: seeds this party's shuffling (and, with `dropout_bits`, its dropout masks).

    Example:
        >>> from tfkit.federated.fedmd import paper_cnn
        >>> x, y = np.random.rand(12, 28, 28).astype("float32"), np.arange(12) % 16
        >>> party = Party("p0", paper_cnn(0, width=0.1), x, y, private_batch_size=4)
        >>> loss = party.train_private(epochs=1)
        >>> party.logits(x[:3]).shape, 0.0 <= party.accuracy(x, y) <= 1.0
        ((3, 16), True)
    """

    def __init__(self, name: str, model: keras.Model, x_private: np.ndarray,
                 y_private: np.ndarray, *, learning_rate: float = 1e-3,
                 private_batch_size: int = 32, digest_batch_size: int = 256,
                 predict_batch_size: int = 64, digest_batch_norm: str = "batch",
                 digest_micro_batch_size: int | None = None, dropout_bits: int | None = None,
                 jit_compile: bool = False, seed: int = 0):
        if digest_batch_norm not in ("batch", "moving"):
            raise ValueError(f"digest_batch_norm must be 'batch' or 'moving', got "
                             f"{digest_batch_norm!r}")
        if digest_micro_batch_size is not None:
            if digest_batch_norm != "moving":
                raise ValueError(
                    "digest_micro_batch_size needs digest_batch_norm='moving': with 'batch', "
                    "BatchNormalization uses each batch's statistics, so micro-batches would "
                    "change the update")
            if digest_micro_batch_size < 1:
                raise ValueError(f"digest_micro_batch_size must be >= 1, got "
                                 f"{digest_micro_batch_size}")
        if dropout_bits is not None and dropout_bits not in BITS:
            raise ValueError(f"dropout_bits must be None or one of {BITS}, got {dropout_bits!r}")
        problem = _model_problem(model)
        if problem:
            raise ValueError(f"party {name}: {problem}")
        self.name = name
        self.model = model
        self.x_private = to_float_images(np.asarray(x_private))
        self.y_private = self.check_data(self.x_private, y_private, "x_private/y_private")
        if not len(self.x_private):
            raise ValueError(f"party {name} has no private examples (an empty client in its "
                             "ClientData?); every party needs private data to train on")
        self.learning_rate = learning_rate
        self.private_batch_size = private_batch_size
        self.digest_batch_size = digest_batch_size
        self.predict_batch_size = predict_batch_size
        self.digest_batch_norm = digest_batch_norm
        self.digest_micro_batch_size = digest_micro_batch_size
        self.dropout_bits = dropout_bits
        self.seed = seed
        # One mask generator per redirected Dropout layer (state checkpointed in get_state).
        self._dropout_layers = dropout_layers(model, dropout_bits) if dropout_bits else []
        if dropout_bits and not self._dropout_layers:
            raise ValueError(
                f"party {name}: dropout_bits={dropout_bits}, but its model has no plain Dropout "
                f"layer to draw masks for (one with a nonzero rate, no noise_shape, and a last "
                f"axis that is a multiple of {32 // dropout_bits}); leave dropout_bits=None")
        self._dropout_generators = [tf.random.Generator.from_seed(1000 * seed + i)
                                    for i in range(len(self._dropout_layers))]
        # Two Adam optimizers, as the authors' two compiled models (classifier, logit matcher).
        # A model that computes in float16 (mixed_float16) gets dynamic loss scaling, as
        # `model.fit` does: float16 gradients below ~6e-8 would otherwise be zero.
        self.loss_scaling = any(getattr(layer, "compute_dtype", None) == "float16"
                                for layer in (model, *model.submodules))

        def adam() -> keras.optimizers.Optimizer:
            opt = keras.optimizers.Adam(learning_rate)
            return keras.mixed_precision.LossScaleOptimizer(opt) if self.loss_scaling else opt

        self.class_optimizer, self.digest_optimizer = adam(), adam()
        for opt in (self.class_optimizer, self.digest_optimizer):  # slots exist from the start,
            opt.build(model.trainable_variables)  # so checkpoints always have one structure
        self._rng = np.random.default_rng(seed)
        ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        variables = model.trainable_variables
        x_spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
        y_spec = tf.TensorSpec([None], tf.int64)
        logits_spec = tf.TensorSpec([None, model.output_shape[-1]], tf.float32)

        def regularization() -> tf.Tensor:
            return tf.add_n([tf.cast(loss, tf.float32) for loss in model.losses]) \
                if model.losses else tf.constant(0.0)

        pixels = takes_pixels(model)  # a uint8 Input or a first Rescaling(1/255): 0..255 in

        def forward(x: tf.Tensor, training: bool) -> tf.Tensor:
            x = to_model_pixels(model, x) if pixels else x  # x: float32 [0, 1] images
            masks = bit_dropout_calls(self._dropout_layers, self._dropout_generators,
                                      dropout_bits) if training and dropout_bits else \
                contextlib.nullcontext()
            with masks:  # (open while the step is traced)
                # float32 scores whatever the model computes in (float64 layers, mixed_float16)
                return tf.cast(model(x, training=training), tf.float32)

        norms = [m for m in model.submodules if isinstance(m, (
            keras.layers.BatchNormalization, keras.layers.experimental.SyncBatchNormalization))]

        def digest_forward(x: tf.Tensor) -> tf.Tensor:
            if digest_batch_norm == "batch":
                return forward(x, training=True)
            # Traced once: a non-trainable BatchNormalization layer runs in inference mode (moving
            # statistics, not updated) while dropout stays in training mode. Its scale and offset
            # are still trained (they are in `variables`, fixed at construction).
            flags = [m.trainable for m in norms]
            for m in norms:
                m.trainable = False
            try:
                return forward(x, training=True)
            finally:
                for m, flag in zip(norms, flags, strict=True):
                    m.trainable = flag

        def scaled(opt, loss):  # the loss times the optimizer's loss scale (mixed precision)
            return opt.get_scaled_loss(loss) if self.loss_scaling else loss

        def unscaled(opt, grads):
            return opt.get_unscaled_gradients(grads) if self.loss_scaling else grads

        @tf.function(jit_compile=jit_compile, input_signature=[x_spec, y_spec], autograph=False)
        def class_step(x, y):
            with tf.GradientTape() as tape:
                loss = ce(y, forward(x, training=True)) + regularization()
                scaled_loss = scaled(self.class_optimizer, loss)
            grads = unscaled(self.class_optimizer, tape.gradient(scaled_loss, variables))
            self.class_optimizer.apply_gradients(zip(grads, variables, strict=True))
            return loss

        def digest_gradients(x, target):
            with tf.GradientTape() as tape:
                mae = tf.reduce_mean(tf.abs(digest_forward(x) - target))
                loss = scaled(self.digest_optimizer, mae + regularization())
            return tape.gradient(loss, variables), mae

        def micro_batch_gradients(x, target):
            # The batch's gradient as the size-weighted sum of its micro-batches' gradients
            # (the MAE is a mean over images; moving BN statistics make images independent).
            m = digest_micro_batch_size
            n = tf.shape(x)[0]

            def body(i, grads, mae):
                xm, tm = x[i * m:(i + 1) * m], target[i * m:(i + 1) * m]
                w = tf.cast(tf.shape(xm)[0], tf.float32) / tf.cast(n, tf.float32)
                g, mae_m = digest_gradients(xm, tm)
                return (i + 1, [a + tf.cast(w, b.dtype) * b for a, b in zip(grads, g, strict=True)],
                        mae + w * mae_m)

            zeros = [tf.zeros_like(v) for v in variables]
            # One iteration at a time: dropout's stateful random ops then draw their masks in
            # micro-batch order (parallel iterations would make the draws timing-dependent).
            _, grads, mae = tf.while_loop(lambda i, *_: i < (n + m - 1) // m, body,
                                          (tf.constant(0), zeros, tf.constant(0.0)),
                                          parallel_iterations=1)
            return grads, mae

        @tf.function(jit_compile=jit_compile, input_signature=[x_spec, logits_spec],
                     autograph=False)
        def digest_step(x, target):
            grads, mae = (digest_gradients if digest_micro_batch_size is None
                          else micro_batch_gradients)(x, target)
            grads = unscaled(self.digest_optimizer, grads)  # (scaled: summed as they are)
            self.digest_optimizer.apply_gradients(zip(grads, variables, strict=True))
            return mae

        @tf.function(input_signature=[x_spec], autograph=False)
        def logits_step(x):
            return forward(x, training=False)

        for step in (class_step, digest_step, logits_step):
            # Each party traces each step once (fixed signatures), but TensorFlow keys its
            # "frequent retracing" warning by the Python code object, which all parties share:
            # from the sixth party on it warned about retracing that is not happening.
            step._omit_frequent_tracing_warning = True
        self._class_step, self._digest_step, self._logits_step = class_step, digest_step, \
            logits_step

    # -- input checks ----------------------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        """How many class scores the model outputs (labels must be 0..num_classes-1)."""
        return int(self.model.output_shape[-1])

    def check_images(self, x: np.ndarray, what: str = "images") -> None:
        """Raises ValueError unless `x` is a batch of images of the model's input shape."""
        want = self.model.input_shape
        if not isinstance(want, tuple):  # not a single input (refused in __init__)
            return
        got = np.shape(x)
        if len(got) != len(want) or any(w is not None and w != g
                                        for w, g in zip(want[1:], got[1:], strict=True)):
            raise ValueError(f"party {self.name}: {what} have shape {got}, but its model takes "
                             f"images of shape (N, {', '.join(map(str, want[1:]))})")

    def check_data(self, x: np.ndarray, y: np.ndarray, what: str = "data") -> np.ndarray:
        """Checks images `x` and integer labels `y` (one per image, each a class the model
        scores); returns `y` as int64."""
        self.check_images(x, what)
        y = np.asarray(y)
        if not whole_labels(y):
            raise ValueError(f"party {self.name}: {what} need integer class labels, got "
                             f"{y.dtype} labels such as {y.flat[0]!r}")
        if y.ndim != 1 or len(y) != len(x):
            raise ValueError(f"party {self.name}: {what} need one integer label per image, got "
                             f"{len(x)} images and labels of shape {y.shape}")
        if len(y) and (y.min() < 0 or y.max() >= self.num_classes):
            raise ValueError(
                f"party {self.name}: {what} have labels {int(y.min())}..{int(y.max())}, but its "
                f"model outputs {self.num_classes} class scores (labels 0.."
                f"{self.num_classes - 1}): give every model one output per class of the public "
                "and the private data")
        return y.astype(np.int64)

    # -- building blocks ---------------------------------------------------------------------

    def _batches(self, n: int, batch_size: int, shuffle: bool = True) -> list[np.ndarray]:
        order = self._rng.permutation(n) if shuffle else np.arange(n)
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]

    def fit_labels(self, x: np.ndarray, y: np.ndarray, epochs: int, batch_size: int) -> float:
        """Trains on (x, y) with cross-entropy; returns the last batch loss."""
        x = to_float_images(np.asarray(x))
        y = self.check_data(x, y)
        if not len(x):
            raise ValueError(f"party {self.name}: no examples to train on")
        loss = 0.0
        for _ in range(epochs):
            for idx in self._batches(len(x), min(batch_size, len(x))):
                loss = self._class_step(x[idx], y[idx])
        return float(loss)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Class scores on `x` (inference mode), float32 [N, num_classes]."""
        x = to_float_images(np.asarray(x))
        self.check_images(x)
        if not len(x):
            return np.zeros((0, self.num_classes), np.float32)
        return np.concatenate([self._logits_step(x[i:i + self.predict_batch_size]).numpy()
                               for i in range(0, len(x), self.predict_batch_size)])

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        y = self.check_data(np.asarray(x), y, "test data")
        return float(np.mean(self.logits(x).argmax(-1) == y))

    # -- FedMD stages --------------------------------------------------------------------------

    def train_private(self, epochs: int) -> float:
        """Trains on the private data (transfer learning, and the `revisit` stage)."""
        return self.fit_labels(self.x_private, self.y_private, epochs, self.private_batch_size)

    def digest(self, x: np.ndarray, consensus: np.ndarray, epochs: int = 1) -> float:
        """Fits the consensus logits on the alignment set with MAE; returns the last batch MAE."""
        x, consensus = to_float_images(np.asarray(x)), np.asarray(consensus, np.float32)
        self.check_images(x, "alignment images")
        if consensus.shape != (len(x), self.num_classes):
            raise ValueError(f"party {self.name}: the consensus has shape {consensus.shape}, "
                             f"not (images, classes) = {(len(x), self.num_classes)}")
        mae = 0.0
        for _ in range(epochs):
            for idx in self._batches(len(x), self.digest_batch_size):
                mae = self._digest_step(x[idx], consensus[idx])
        return float(mae)

    # -- state (for checkpoints) -----------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """Model weights and both optimizers' slots (and loss scales: mixed_float16), as numpy
        arrays."""
        return {"model": [np.asarray(w) for w in self.model.get_weights()],
                "class_optimizer": [v.numpy() for v in self.class_optimizer.variables],
                "digest_optimizer": [v.numpy() for v in self.digest_optimizer.variables],
                "rng": json.dumps(self._rng.bit_generator.state),  # exact shuffling state
                # with dropout_bits: the mask generators' states (absent without)
                **({"dropout_rng": [g.state.numpy() for g in self._dropout_generators]}
                   if self._dropout_generators else {}),
                # mixed precision: both optimizers' dynamic loss scale and good-step counter
                **({"loss_scale": np.array([v for opt in self._optimizers()
                                            for v in (float(opt.loss_scale),
                                                      float(opt.dynamic_counter.numpy()))])}
                   if self.loss_scaling else {})}

    def _optimizers(self) -> tuple[Any, Any]:
        return self.class_optimizer, self.digest_optimizer

    def set_state(self, state: dict[str, Any]) -> None:
        self.model.set_weights(list(state["model"]))
        for key, opt in (("class_optimizer", self.class_optimizer),
                         ("digest_optimizer", self.digest_optimizer)):
            for var, value in zip(opt.variables, state[key], strict=True):
                var.assign(value)
        rng = state["rng"]
        rng = rng.item() if isinstance(rng, np.ndarray) else rng
        self._rng.bit_generator.state = json.loads(rng.decode() if isinstance(rng, bytes)
                                                   else rng)
        if "dropout_rng" in state:  # (states saved without dropout_bits have none)
            saved = list(state["dropout_rng"])
            if len(saved) != len(self._dropout_generators):
                raise ValueError(f"party {self.name}: the state has {len(saved)} dropout mask "
                                 f"generators, this party {len(self._dropout_generators)} "
                                 "(saved with another dropout_bits or model?)")
            for generator, value in zip(self._dropout_generators, saved, strict=True):
                generator.state.assign(value)
        if "loss_scale" in state:  # (states of float32 models, or saved before, have none)
            if not self.loss_scaling:
                raise ValueError(f"party {self.name}: the state has a loss scale (saved from a "
                                 "mixed_float16 model), this party's model computes in "
                                 f"{self.model.compute_dtype}")
            values = np.asarray(state["loss_scale"], np.float64).reshape(2, 2)
            for opt, (scale, counter) in zip(self._optimizers(), values, strict=True):
                opt._loss_scale.current_loss_scale.assign(scale)  # (a variable)
                opt.dynamic_counter.assign(int(counter))

    def num_parameters(self) -> int:
        return int(sum(np.prod(w.shape) for w in self.model.trainable_weights))
