"""Evaluators by name, and running a list of suites into one flat results dict.

    >>> from tfkit.robustness import registry
    >>> registry.names()
    ['clean', 'corruptions', 'adversarial', 'spatial', 'patch', 'layers', 'cka']
    >>> model = lambda x: tf.reduce_mean(x, axis=[1, 2]) * [[1.0, -1.0]]  # any predict_fn
    >>> x, y = np.random.rand(4, 8, 8, 1).astype("float32"), np.array([0, 1, 0, 1])
    >>> results = registry.run(model, (x, y), ["clean"])
    >>> sorted(results)
    ['clean/accuracy', 'clean/ece']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from tfkit.errors import TfkitError
from tfkit.robustness import evaluate, evaluate_layers

__all__ = ["CHECKS", "EVALUATORS", "SUITES", "UnknownEvaluatorError", "check_suites", "get",
           "names", "register", "run"]

Evaluator = Callable[..., Iterator[tuple[str, Any]]]

EVALUATORS: dict[str, Evaluator] = {
    "clean": evaluate.clean,
    "corruptions": evaluate.corruptions,
    "adversarial": evaluate.adversarial,
    "spatial": evaluate.spatial_grid,
    "patch": evaluate.patches,
    "layers": evaluate_layers.layers,
    "cka": evaluate_layers.layer_cka,
}
# CLI suite -> evaluators it runs ("layers" = removal + restricted attention + CKA).
SUITES: dict[str, tuple[str, ...]] = {name: (name,) for name in EVALUATORS}
SUITES["layers"] = ("layers", "cka")
Check = Callable[[Any, Any], None]
# Cheap checks `run` makes for every evaluator it will run before it runs any, so a model an
# evaluator cannot take fails now, not after the suites before it have run for minutes.
CHECKS: dict[str, Check] = {
    "adversarial": evaluate.check_attackable,
    "layers": evaluate_layers.check_editable,
    "cka": evaluate_layers.check_editable,
}


class UnknownEvaluatorError(TfkitError, KeyError):
    """No evaluator or suite of that name."""

    def __str__(self) -> str:
        return str(self.args[0])


def names() -> list[str]:
    return list(EVALUATORS)


def get(name: str) -> Evaluator:
    """The evaluator `name`; the error lists the valid names."""
    if name not in EVALUATORS:
        raise UnknownEvaluatorError(f"unknown evaluator {name!r}; valid: {', '.join(EVALUATORS)}")
    return EVALUATORS[name]


def register(name: str, check: Check | None = None) -> Callable[[Evaluator], Evaluator]:
    """Decorator adding a user evaluator `fn(model, data, **options)` under `name`;
    `check(model, data)`, if given, raises before any suite runs when `fn` cannot take them."""
    def wrap(fn: Evaluator) -> Evaluator:
        EVALUATORS[name] = fn
        SUITES.setdefault(name, (name,))
        if check is not None:
            CHECKS[name] = check
        else:  # a new evaluator under a built-in name is not held to the old one's check
            CHECKS.pop(name, None)
        return fn
    return wrap


def check_suites(suites: Iterable[str]) -> list[str]:
    """`suites` stripped of blanks; an UnknownEvaluatorError listing the valid names for any
    that is not a suite."""
    suites = [s.strip() for s in suites if s.strip()]
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        raise UnknownEvaluatorError(f"unknown suite(s) {unknown}; valid: {', '.join(SUITES)}")
    return suites


def run(model: Any, data: Any, suites: Iterable[str],
        options: Mapping[str, Mapping[str, Any]] | None = None,
        log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Runs every evaluator of `suites` (each once) and returns {name: value}.

    `options[evaluator]` are keyword arguments for that evaluator, e.g.
    {"adversarial": {"steps": 5}}; a key that names no evaluator is an error. The `CHECKS` of
    every evaluator to run are made first (e.g. the layers suite on a SavedModel signature, or
    the attacks on a numpy predict_fn, fail before the other suites run).
    """
    suites = check_suites(suites)
    misspelt = [name for name in (options or {}) if name not in EVALUATORS]
    if misspelt:
        raise UnknownEvaluatorError(f"options for unknown evaluator(s) {misspelt}; valid: "
                                    f"{', '.join(EVALUATORS)}")
    # each evaluator once, in order (e.g. `tfkit eval robustness --suite clean` adds "clean")
    evaluators = list(dict.fromkeys(name for suite in suites for name in SUITES[suite]))
    for name in evaluators:
        if name in CHECKS:
            CHECKS[name](model, data)
    results: dict[str, Any] = {}
    for name in evaluators:
        for key, value in get(name)(model, data, **dict((options or {}).get(name, {}))):
            results[key] = value
            if log is not None and isinstance(value, float):
                log(f"{key}: {value:.4f}")
    return results
