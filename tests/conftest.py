"""Shared fixtures. The broker and PostgreSQL fixtures are session-scoped and only
integration tests use them."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy import create_engine, text

from driftline import broker
from driftline.settings import Settings

# Property tests judge results, not speed: Hypothesis's 200 ms deadline per example
# failed a pure test on a busy shared machine (544 ms), so no deadline anywhere.
hypothesis_settings.register_profile("driftline", deadline=None)
hypothesis_settings.load_profile("driftline")


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


PG_SH = Path(__file__).resolve().parent.parent / "infra" / "postgres" / "pg.sh"


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL server for the whole session: its SQLAlchemy URL (database
    ``postgres``, superuser ``driftline``).

    DRIFTLINE_TEST_POSTGRES_URL points at a running one; otherwise infra/postgres/pg.sh
    starts one from the machine's PostgreSQL binaries in a temp dir on a free port and
    stops it at the end. If it cannot start, every test that needs it errors: never a
    skip (``infra/bootstrap.sh --for test`` installs the binaries).
    """
    given = os.environ.get("DRIFTLINE_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    directory: Path = tmp_path_factory.mktemp("postgres")
    up = subprocess.run(
        ["bash", str(PG_SH), "up", str(directory)], capture_output=True, text=True, check=False
    )
    if up.returncode != 0 or not up.stdout.strip():
        raise RuntimeError(f"PostgreSQL did not start: {up.stderr.strip()}")
    try:
        yield up.stdout.strip()
    finally:
        subprocess.run(["bash", str(PG_SH), "down", str(directory), "--purge"], check=False)


@pytest.fixture
def postgres_db(postgres_server: str) -> Iterator[str]:
    """The URL of a new, empty database of one test on the session's PostgreSQL server;
    dropped (with any connection left to it) after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield f"{postgres_server.rsplit('/', 1)[0]}/{name}"
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database for one test, once per backend of the SQL view: a
    SQLite file, and a database of its own on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/view.db"
    url: str = request.getfixturevalue("postgres_db")
    return url
