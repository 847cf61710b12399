"""Shared fixtures. The broker fixture is session-scoped and only integration tests use it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftline import broker
from driftline.settings import Settings


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Kafka broker for the whole session.

    DRIFTLINE_TEST_BOOTSTRAP points at a running one; otherwise a single-node KRaft
    broker is started from the project's jars in a temp dir on a free port and stopped
    at the end. If it cannot start, every integration test errors: never a skip.
    """
    given = os.environ.get("DRIFTLINE_TEST_BOOTSTRAP")
    if given:
        yield given
        return
    directory: Path = tmp_path_factory.mktemp("broker")
    bootstrap = broker.up("auto", directory)
    if not bootstrap:
        raise RuntimeError("broker.sh up printed no bootstrap address")
    try:
        yield bootstrap
    finally:
        broker.down(directory, purge=True)


@pytest.fixture
def settings(kafka_bootstrap: str) -> Settings:
    """Settings for one test: its own topic prefix (a uuid), 3 data partitions."""
    return Settings(
        bootstrap_servers=kafka_bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:12]}.",
        data_partitions=3,
        client_id=f"test-{uuid.uuid4().hex[:6]}",
    )


@pytest.fixture
def group_id() -> str:
    """A consumer group of its own for one test."""
    return f"g-{uuid.uuid4().hex[:12]}"
