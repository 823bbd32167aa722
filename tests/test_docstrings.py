"""The examples in the docstrings run and print what they show (a stale one fails here)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import grokcast

MODULES = sorted(m.name for m in pkgutil.walk_packages(grokcast.__path__, "grokcast."))
OPTIONAL = {"optuna", "ray"}  # the integrations' tuners: extras, not dependencies


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as err:  # an optional tuner that is not installed; any other
        if (err.name or "").split(".")[0] not in OPTIONAL:  # failed import is a bug
            raise
        pytest.skip(str(err))
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_the_examples_are_found():
    """Guards the test above against finding nothing (a doctest collected from no module)."""
    def has_examples(name: str) -> bool:
        tests = doctest.DocTestFinder().find(importlib.import_module(name))
        return any(t.examples for t in tests)

    documented = {"grokcast.stats", "grokcast.tool", "grokcast.forecast", "grokcast.logistic"}
    assert documented <= set(filter(has_examples, MODULES))
