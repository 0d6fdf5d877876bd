"""Input-perturbation evaluators: clean, corruptions, adversarial, spatial, patch.

An evaluator takes a model (a Keras model or any `predict_fn`: float [0, 1] images -> logits)
and a dataset (a `tf.data.Dataset` of (images, labels) batches, or an (images, labels) pair of
arrays) and yields `(name, value)` pairs:

    >>> for name, value in corruptions(model, (x_test, y_test), severities=(1, 5)):
    ...     print(name, value)                        # corruptions/fog/1 0.71 ...

Names are slash-separated paths ("adversarial/pgd_linf/0.0078"); values are floats.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from tfkit.backend import keras, tf
from tfkit.robustness import metrics, patch, spatial
from tfkit.robustness.adversarial import PGD
from tfkit.robustness.corruptions import CORRUPTIONS, SEVERITIES, corrupt, seed_pair

__all__ = ["as_predict_fn", "as_dataset", "predict", "clean", "corruptions", "adversarial",
           "spatial_grid", "patches"]

PredictFn = Callable[[tf.Tensor], tf.Tensor]
Results = Iterator[tuple[str, Any]]
BATCH_SIZE = 128  # evaluation batch: large enough for throughput, small for memory


def as_predict_fn(model: keras.Model | PredictFn) -> PredictFn:
    """A traced images -> logits function for a Keras model (inference mode) or a callable."""
    if isinstance(model, keras.Model):
        return tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    if not callable(model):
        raise TypeError(f"expected a Keras model or a predict_fn, got {type(model).__name__}")
    return model


def as_dataset(data: tf.data.Dataset | tuple[np.ndarray, np.ndarray],
               batch_size: int = BATCH_SIZE) -> tf.data.Dataset:
    """(images, labels) batches; uint8 array images are scaled to float [0, 1]."""
    if isinstance(data, tf.data.Dataset):
        return data
    x, y = data
    x = np.asarray(x)
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    x = x[..., None] if x.ndim == 3 else x
    return tf.data.Dataset.from_tensor_slices((x, np.asarray(y).reshape(-1))).batch(batch_size)


def predict(fn: PredictFn, ds: Iterable[tuple[tf.Tensor, tf.Tensor]]
            ) -> tuple[np.ndarray, np.ndarray]:
    """(logits [N, classes], labels [N]) over a dataset of (images, labels) batches."""
    logits, labels = [], []
    for x, y in ds:
        logits.append(np.asarray(fn(x)))
        labels.append(np.asarray(y).reshape(-1))
    return np.concatenate(logits), np.concatenate(labels)


def _accuracy(fn: PredictFn, ds: Iterable[tuple[tf.Tensor, tf.Tensor]]) -> float:
    return metrics.accuracy(*predict(fn, ds))


def clean(model: keras.Model | PredictFn, data: Any) -> Results:
    """clean/accuracy and clean/ece."""
    logits, labels = predict(as_predict_fn(model), as_dataset(data))
    yield "clean/accuracy", metrics.accuracy(logits, labels)
    yield "clean/ece", metrics.expected_calibration_error(logits, labels)


def corruptions(model: keras.Model | PredictFn, data: Any,
                names: Sequence[str] = tuple(CORRUPTIONS), severities: Sequence[int] = SEVERITIES,
                seed: int = 0) -> Results:
    """corruptions/NAME/SEVERITY accuracy for every pair, then corruptions/mean_accuracy.

    Batch i is corrupted with seed (seed, corruption index, severity, i). The ops run eagerly
    batch by batch: on evaluation-sized data that beats tracing 75 `tf.data` pipelines.
    """
    fn, ds = as_predict_fn(model), as_dataset(data)
    accs = []
    for c_index, name in enumerate(names):
        for severity in severities:
            perturbed = ((corrupt(x, name, severity, seed_pair(seed, c_index, severity, i)), y)
                         for i, (x, y) in enumerate(ds))
            acc = _accuracy(fn, perturbed)
            accs.append(acc)
            yield f"corruptions/{name}/{severity}", acc
    yield "corruptions/mean_accuracy", float(np.mean(accs))


def adversarial(model: keras.Model | PredictFn, data: Any,
                linf_epsilons: Sequence[float] = (1 / 255, 2 / 255, 4 / 255, 8 / 255),
                l2_epsilons: Sequence[float] = (0.1, 0.25, 0.5), steps: int = 10,
                step_size: float | None = None, seed: int = 0) -> Results:
    """adversarial/{fgsm_linf,pgd_linf,pgd_l2}/EPSILON accuracy (epsilon on [0, 1] pixels)."""
    fn, ds = as_predict_fn(model), as_dataset(data)

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
    fn, ds = as_predict_fn(model), as_dataset(data)
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


def patches(model: keras.Model | PredictFn, data: Any, patch_size: int | None = None,
            drop_counts: Sequence[int] = (1, 4, 16), noise_patches: int = 4,
            noise_std: float = 0.5, seed: int = 0) -> Results:
    """patch/shuffle, patch/drop/N, patch/noise_aligned, patch/noise_misaligned accuracy.

    `patch_size` defaults to the model's (`model.patch_size`, e.g. a tfkit ViT), else 4.
    """
    p = patch_size or int(getattr(model, "patch_size", 4))
    fn, ds = as_predict_fn(model), as_dataset(data)
    ops = {"patch/shuffle": lambda x, s: patch.shuffle_patches(x, p, s)}
    for n in drop_counts:
        ops[f"patch/drop/{n}"] = lambda x, s, n=n: patch.drop_patches(x, p, n, s)
    ops["patch/noise_aligned"] = lambda x, s: patch.patch_noise(x, p, noise_patches, noise_std, s)
    ops["patch/noise_misaligned"] = lambda x, s: patch.patch_noise(
        x, p, noise_patches, noise_std, s, offset=p // 2)
    for k, (name, op) in enumerate(ops.items()):
        perturbed = ((op(x, seed_pair(seed, k, i)), y) for i, (x, y) in enumerate(ds))
        yield name, _accuracy(fn, perturbed)
