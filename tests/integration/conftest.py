"""Every test in this folder talks to the real broker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from driftline.settings import Settings
from tests.integration import harness
from tests.integration.churn import start_pipeline
from tests.integration.loop_helpers import loop_settings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def s(settings: Settings, tmp_path: Path) -> Settings:
    """The trainer-loop tests' settings (tests/integration/loop_helpers.py): topics
    applied, artifacts and the SQL view under ``tmp_path``. A test file that needs other
    settings under this name defines its own ``s``."""
    return loop_settings(settings, tmp_path)


@pytest.fixture
def pipeline(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path
) -> Iterator[tuple[Settings, str, harness.Process]]:
    """A running worker with a bootstrapped churn champion (tests/integration/churn.py):
    (settings, champion version, worker process). Parametrize it indirectly with a
    table store (``"rocksdb://"``) to run the worker on it; memory:// otherwise."""
    store = getattr(request, "param", "memory://")
    s, champion, proc = start_pipeline(settings, tmp_path, table_store=store)
    try:
        yield s, champion, proc
    finally:
        proc.stop()
