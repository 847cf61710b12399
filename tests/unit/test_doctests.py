"""The docstring examples of the modules outside driftline/core run as tests (pytest's
--doctest-modules walks only driftline/core; the client's are in
tests/unit/client/test_doctests.py, the loop bench's in tests/unit/bench). Each module
listed has examples, and they pass."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "driftline.cli.ops_format",
    "driftline.cli.text",
    "driftline.demo.drift_panel",
    "driftline.demo.report",
    "driftline.demo.synthetic",
    "driftline.demo.watch",
    "driftline.kafka.status",
    "driftline.replay",
    "driftline.streams.monitors",
    "driftline.streams.statuspage",
    "driftline.streams.svgchart",
    "driftline.streams.web",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0 and result.attempted > 0
