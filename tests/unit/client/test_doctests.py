"""The docstring examples of the client package, the header module and the trainer's
outcome run as tests (pytest's --doctest-modules only walks driftline/core)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import driftline.client

MODULES = sorted(
    ["driftline.core.wire.headers", "driftline.cli_schemas", "driftline.consumers.trainer"]
    + [f"driftline.client.{m.name}" for m in pkgutil.iter_modules(driftline.client.__path__)]
    + ["driftline.client"]
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_the_reference_docs_cover_every_public_name() -> None:
    text = (Path(__file__).resolve().parents[3] / "docs" / "client.md").read_text()
    missing = [name for name in driftline.client.__all__ if f"`{name}" not in text]
    assert not missing, f"docs/client.md does not document {missing}"
