"""Every `>>>` example in tfkit's docstrings runs and prints what it shows.

The examples use tiny models and random data (a few seconds in all). They see `np`, `tf` and
`keras` as the docstrings assume, and run in a temporary folder (some write files).
"""

import doctest
import importlib
import pkgutil

import numpy as np
import pytest

import tfkit
from tfkit.backend import keras, tf

MODULES = sorted(m.name for m in pkgutil.walk_packages(tfkit.__path__, "tfkit."))


def _docstrings() -> list[doctest.DocTest]:
    found = []
    for name in MODULES:
        module = importlib.import_module(name)
        for test in doctest.DocTestFinder().find(module, name):
            # objects a module imports from elsewhere are checked where they are defined
            if test.examples and test.globs.get("__name__") == name:
                found.append(test)
    return found


DOCSTRINGS = _docstrings()


def test_the_examples_are_found():
    names = {t.name for t in DOCSTRINGS}
    assert {"tfkit.layers.top_k.TopKActivation", "tfkit.training.ResumableFit",
            "tfkit.export"} <= names
    assert len(DOCSTRINGS) >= 50


@pytest.mark.parametrize("test", DOCSTRINGS, ids=lambda t: t.name)
def test_docstring_example(test, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    test.globs.update({"np": np, "tf": tf, "keras": keras})
    report = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    result = runner.run(test, out=report.append)
    assert result.failed == 0, "".join(report)
