"""Robustness of image classifiers (Bhojanapalli et al., "Understanding Robustness of
Transformers for Image Classification", ICCV 2021).

- `corruptions`: the 15 ImageNet-C corruptions x 5 severities as batched TensorFlow ops.
- `adversarial`: FGSM and PGD (L-inf, L2). `spatial`: rotations / translations (worst of grid).
  `patch`: shuffle, drop and patch-aligned noise.
- `model_perturbations`: block and sub-layer removal, restricted attention; `cka`: layer CKA.
- `evaluate` / `evaluate_layers`: evaluators yielding (name, value); `registry` runs them by name.
- `metrics`: accuracy, ECE, mCE and relative mCE.

    >>> from tfkit.models import ViT
    >>> model = ViT(image_size=8, patch_size=4, num_layers=2, hidden_dim=16, num_heads=2,
    ...             intermediate_dim=32, num_classes=3, channels=1)
    >>> x_test, y_test = np.random.rand(6, 8, 8, 1).astype("float32"), np.arange(6) % 3
    >>> from tfkit.robustness import registry
    >>> results = registry.run(model, (x_test, y_test), ["clean", "patch"])
    >>> results["clean/accuracy"] >= 0.0, "patch/shuffle" in results
    (True, True)
"""
