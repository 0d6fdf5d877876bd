"""Input-perturbation evaluators: clean, corruptions, adversarial, spatial, patch.

An evaluator takes a model (a Keras model or any `predict_fn`: float [0, 1] images -> logits)
and a dataset (a `tf.data.Dataset` of (images, labels) batches, or an (images, labels) pair of
arrays) and yields `(name, value)` pairs:

    >>> from tfkit.models import ViT
    >>> model = ViT(image_size=32, patch_size=8, num_layers=1, hidden_dim=16, num_heads=2,
    ...             intermediate_dim=32, num_classes=10)
    >>> x_test, y_test = np.random.rand(8, 32, 32, 3).astype("float32"), np.arange(8)
    >>> for name, value in corruptions(model, (x_test, y_test), ["fog"], severities=(1, 5)):
    ...     print(name, 0.0 <= value <= 1.0)
    corruptions/fog/1 True
    corruptions/fog/5 True
    corruptions/mean_accuracy True

Names are slash-separated paths ("adversarial/pgd_linf/0.0078"); values are floats. A new
evaluator starts with `fn, ds = prepare(model, data)` (checked predict_fn and float batches):

    >>> @registry.register("blur")                                      # doctest: +SKIP
    ... def blur(model, data):
    ...     fn, ds = prepare(model, data)
    ...     yield "blur/accuracy", metrics.accuracy(*predict(fn, ((blurred(x), y) for x, y in ds)))
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from tfkit.backend import keras, tf
from tfkit.robustness import metrics, patch, spatial
from tfkit.robustness.adversarial import PGD, input_gradient
from tfkit.robustness.corruptions import CORRUPTIONS, SEVERITIES, corrupt, seed_pair
from tfkit.robustness.inputs import (  # re-exported: custom evaluators start from these
    EvaluationInputError,
    PredictFn,
    as_dataset,
    as_logits,
    as_predict_fn,
    check_input_shape,
    prepare,
    probability_tolerance,
    takes_pixels,
)

__all__ = ["EvaluationInputError", "as_predict_fn", "as_dataset", "as_logits", "check_input_shape",
           "probability_tolerance", "takes_pixels", "prepare", "predict", "check_differentiable",
           "clean", "corruptions", "adversarial", "spatial_grid", "patches"]

Results = Iterator[tuple[str, Any]]


def predict(fn: PredictFn, ds: Iterable[tuple[tf.Tensor, tf.Tensor]]
            ) -> tuple[np.ndarray, np.ndarray]:
    """(logits [N, classes], labels [N]) over a dataset of (images, labels) batches."""
    logits, labels = [], []
    for x, y in ds:
        logits.append(np.asarray(fn(x)))
        labels.append(np.asarray(y).reshape(-1))
    if not logits:
        raise EvaluationInputError("the data has no examples")
    logits, labels = np.concatenate(logits), np.concatenate(labels)
    _check_classes(logits, labels)
    return logits, labels


def _check_classes(logits: np.ndarray, labels: np.ndarray) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[-1]):
        raise EvaluationInputError(
            f"labels go up to {labels.max()} (from {labels.min()}) but the model outputs "
            f"{logits.shape[-1]} classes")


def _accuracy(fn: PredictFn, ds: Iterable[tuple[tf.Tensor, tf.Tensor]]) -> float:
    return metrics.accuracy(*predict(fn, ds))


def clean(model: keras.Model | PredictFn, data: Any) -> Results:
    """clean/accuracy and clean/ece."""
    logits, labels = predict(*prepare(model, data))
    yield "clean/accuracy", metrics.accuracy(logits, labels)
    yield "clean/ece", metrics.expected_calibration_error(logits, labels)


def corruptions(model: keras.Model | PredictFn, data: Any,
                names: Sequence[str] = tuple(CORRUPTIONS), severities: Sequence[int] = SEVERITIES,
                seed: int = 0) -> Results:
    """corruptions/NAME/SEVERITY accuracy for every pair, then corruptions/mean_accuracy.

    Batch i is corrupted with seed (seed, corruption index, severity, i). The ops run eagerly
    batch by batch: on evaluation-sized data that beats tracing 75 `tf.data` pipelines.
    """
    fn, ds = prepare(model, data)
    accs = []
    for c_index, name in enumerate(names):
        for severity in severities:
            perturbed = ((corrupt(x, name, severity, seed_pair(seed, c_index, severity, i)), y)
                         for i, (x, y) in enumerate(ds))
            acc = _accuracy(fn, perturbed)
            accs.append(acc)
            yield f"corruptions/{name}/{severity}", acc
    yield "corruptions/mean_accuracy", float(np.mean(accs))


def check_differentiable(fn: PredictFn, ds: tf.data.Dataset) -> None:
    """Raises a TfkitError now, on one batch, unless the attacks can differentiate `fn`
    (e.g. a numpy predict_fn, a uint8 SavedModel) or the labels exceed its classes."""
    for x, y in ds.take(1):
        _check_classes(np.asarray(fn(x)), np.asarray(y).reshape(-1))
        input_gradient(fn, x[:2], y[:2])


def check_attackable(model: keras.Model | PredictFn, data: Any) -> None:
    """`check_differentiable` on the predict_fn and data the attacks use (`prepare`'s)."""
    check_differentiable(*prepare(model, data))


def adversarial(model: keras.Model | PredictFn, data: Any,
                linf_epsilons: Sequence[float] = (1 / 255, 2 / 255, 4 / 255, 8 / 255),
                l2_epsilons: Sequence[float] = (0.1, 0.25, 0.5), steps: int = 10,
                step_size: float | None = None, seed: int = 0) -> Results:
    """adversarial/{fgsm_linf,pgd_linf,pgd_l2}/EPSILON accuracy (epsilon on [0, 1] pixels).

    The model must be differentiable in TensorFlow: a Keras model, or a predict_fn of
    TensorFlow ops (not numpy, not `Model.predict`)."""
    fn, ds = prepare(model, data)
    check_differentiable(fn, ds)  # (also `run`'s check: a direct call fails as early)

    @tf.function(reduce_retracing=True)
    def attack(x, y, seed, epsilon, step, norm, steps):  # traced once per (norm, steps)
        return PGD(epsilon, norm, steps, step, random_start=steps > 1)(fn, x, y, seed)

    def step_for(e: float, steps: int) -> float:
        return e if steps == 1 else (step_size or 2.5 * e / steps)

    runs = [("fgsm_linf", e, "linf", 1) for e in linf_epsilons]  # FGSM = one full-size step
    runs += [("pgd_linf", e, "linf", steps) for e in linf_epsilons]
    runs += [("pgd_l2", e, "l2", steps) for e in l2_epsilons]
    for name, e, norm, n in runs:
        correct = []
        for i, (x, y) in enumerate(ds):
            adv = attack(x, y, seed_pair(seed, i), tf.constant(e, tf.float32),
                         tf.constant(step_for(e, n), tf.float32), norm, n)
            correct.append(np.argmax(np.asarray(fn(adv)), -1) == np.asarray(y).reshape(-1))
        yield f"adversarial/{name}/{e:.4g}", float(np.mean(np.concatenate(correct)))


def spatial_grid(model: keras.Model | PredictFn, data: Any,
                 rotations: Sequence[float] = (-30, -15, 0, 15, 30),
                 translations: Sequence[int] = (-3, 0, 3)) -> Results:
    """spatial/{rotation,translation,rotation_translation}: worst-of-grid accuracy (an example
    counts only if every transform in the grid is classified correctly)."""
    fn, ds = prepare(model, data)
    grids = {"rotation": spatial.grid(rotations, [0]),
             "translation": spatial.grid([0], translations),
             "rotation_translation": spatial.grid(rotations, translations)}
    everything = sorted(set().union(*grids.values()))
    correct: dict[tuple, list[np.ndarray]] = {t: [] for t in everything}
    for x, y in ds:
        for t in everything:
            pred = np.argmax(np.asarray(fn(spatial.transform(x, *t))), -1)
            correct[t].append(pred == np.asarray(y).reshape(-1))
    for name, transforms in grids.items():
        all_ok = np.all([np.concatenate(correct[t]) for t in transforms], axis=0)
        yield f"spatial/{name}", float(np.mean(all_ok))


def _model_patch_size(model: Any, side: int | None) -> int:
    """The model's patch side in input pixels (a resizing ViT's patches scale with the input)."""
    p = int(getattr(model, "patch_size", 4))
    image_size = getattr(model, "image_size", None)
    if not (getattr(model, "resize_inputs", False) and image_size and side
            and side != image_size):
        return p
    scaled = p * side / image_size
    if scaled != int(scaled):
        raise EvaluationInputError(
            f"{side} px images resize to the ViT's {image_size} px: its {p} px patches are "
            f"{scaled:g} input px; pass the patch suite a patch_size")
    return int(scaled)


def patches(model: keras.Model | PredictFn, data: Any, patch_size: int | None = None,
            drop_counts: Sequence[int] = (1, 4, 16), noise_patches: int = 4,
            noise_std: float = 0.5, seed: int = 0) -> Results:
    """patch/shuffle, patch/drop/N, patch/noise_aligned, patch/noise_misaligned accuracy.

    `patch_size` defaults to the model's (`model.patch_size`, e.g. a tfkit ViT; scaled to
    input pixels when a `resize_inputs` ViT resizes the images), else 4.
    """
    fn, ds = prepare(model, data)
    p = patch_size or _model_patch_size(model, ds.element_spec[0].shape[1])
    ops = {"patch/shuffle": lambda x, s: patch.shuffle_patches(x, p, s)}
    for n in drop_counts:
        ops[f"patch/drop/{n}"] = lambda x, s, n=n: patch.drop_patches(x, p, n, s)
    ops["patch/noise_aligned"] = lambda x, s: patch.patch_noise(x, p, noise_patches, noise_std, s)
    ops["patch/noise_misaligned"] = lambda x, s: patch.patch_noise(
        x, p, noise_patches, noise_std, s, offset=p // 2)
    for k, (name, op) in enumerate(ops.items()):
        perturbed = ((op(x, seed_pair(seed, k, i)), y) for i, (x, y) in enumerate(ds))
        yield name, _accuracy(fn, perturbed)
