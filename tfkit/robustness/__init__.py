"""Robustness of image classifiers (Bhojanapalli et al., "Understanding Robustness of
Transformers for Image Classification", ICCV 2021).

- `corruptions`: the 15 ImageNet-C corruptions x 5 severities as batched TensorFlow ops.
- `adversarial`: FGSM and PGD (L-inf, L2). `spatial`: rotations / translations (worst of grid).
  `patch`: shuffle, drop and patch-aligned noise.
- `model_perturbations`: block and sub-layer removal, restricted attention; `cka`: layer CKA.
- `evaluate` / `evaluate_layers`: evaluators yielding (name, value); `registry` runs them by name.
- `metrics`: accuracy, ECE, mCE and relative mCE.

    >>> from tfkit.robustness import registry
    >>> results = registry.run(model, (x_test, y_test), ["clean", "corruptions"])  # doctest: +SKIP
"""
