"""Every `>>>` example in tfkit's docstrings runs and prints what it shows.

The examples use tiny models and random data (~30 s in all, most of it importing TFF and
keras-nlp). They see `np`, `tf` and `keras` as the docstrings assume, and run in a temporary
folder (some write files there).
"""

import copy
import doctest
import importlib
import pkgutil

import numpy as np
import pytest

import tfkit
from tfkit.backend import keras, tf


def _raise(name: str) -> None:
    raise ImportError(f"cannot import {name}")  # a broken subpackage must fail, not be skipped


MODULES = sorted(m.name for m in pkgutil.walk_packages(tfkit.__path__, "tfkit.", _raise))


def _docstrings() -> list[doctest.DocTest]:
    # DocTestFinder skips objects a module imports from elsewhere: each example runs once
    return [test for name in MODULES
            for test in doctest.DocTestFinder().find(importlib.import_module(name), name)
            if test.examples]


DOCSTRINGS = _docstrings()


def test_the_examples_are_found():
    names = {t.name for t in DOCSTRINGS}
    assert {"tfkit.layers.top_k.TopKActivation", "tfkit.training.ResumableFit",
            "tfkit.export"} <= names
    assert len(DOCSTRINGS) >= 50


@pytest.mark.parametrize("test", DOCSTRINGS, ids=lambda t: t.name)
def test_docstring_example(test, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    test = copy.copy(test)  # the run clears its globals: a re-run starts from the module's
    test.globs = {**test.globs, "np": np, "tf": tf, "keras": keras}
    report = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    result = runner.run(test, out=report.append)
    assert result.failed == 0, "".join(report)
