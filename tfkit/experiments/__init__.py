"""The experiment registry: `tfkit list`, `tfkit run NAME`, `tfkit demo`.

Each experiment lives in its own module exposing `EXPERIMENT: Experiment`; modules are imported
only when used (FedMD imports TensorFlow Federated, which is slow to import).
"""

from __future__ import annotations

import importlib

from tfkit.experiments.base import Experiment, Headline, run_experiment

__all__ = ["Experiment", "Headline", "run_experiment", "get", "names", "SUMMARIES"]

# name -> (module, one-line summary). The summary lives here so `tfkit list` imports nothing.
_REGISTRY: dict[str, tuple[str, str]] = {
    "lazy-neuron": ("tfkit.experiments.lazy_neuron",
                    "Lazy Neuron (ICLR'23): activation sparsity of ReLU MLPs, Top-k MLPs, sparse "
                    "TFLite"),
    "robustness": ("tfkit.experiments.robustness",
                   "ViT vs ResNet robustness (ICCV'21): corruptions, adversarial, spatial, patch, "
                   "layer perturbations"),
    "promot": ("tfkit.experiments.promot",
               "ProMoT (ICLR'24): prompt tuning then model tuning keeps in-context learning"),
    "fedmd": ("tfkit.experiments.fedmd",
              "FedMD (2019): heterogeneous federated learning by model distillation on TFF"),
    "rest-react": ("tfkit.experiments.rest_react",
                   "ReST meets ReAct (2023): search agent self-improvement and self-distillation"),
}
SUMMARIES = {name: summary for name, (_, summary) in _REGISTRY.items()}


def names() -> list[str]:
    return list(_REGISTRY)


def get(name: str) -> Experiment:
    """The registered experiment `name`; a clear error lists valid names on a miss."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown experiment {name!r}; available: {', '.join(_REGISTRY)}")
    module = importlib.import_module(_REGISTRY[name][0])
    return module.EXPERIMENT
