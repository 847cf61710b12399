"""The SQL view's URL: which driver it means, and one clear error when it is missing."""

from __future__ import annotations

import sys

import pytest

from driftline.consumers import sqlview
from driftline.core.errors import ConfigError


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite:///view.db", "pysqlite"),
        ("postgresql://u@db.example/view", "psycopg"),  # psycopg 3, not SQLAlchemy's psycopg2
        ("postgresql+psycopg://u@db.example/view", "psycopg"),
    ],
)
def test_the_driver_a_url_means(url: str, driver: str) -> None:
    engine = sqlview.engine(url)  # no connection is made
    try:
        assert engine.dialect.driver == driver
    finally:
        engine.dispose()


def test_a_missing_postgres_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # `import psycopg` raises ModuleNotFoundError (its submodules stay loaded: removing
    # them would load a second copy of psycopg into this process)
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ConfigError, match=r"pip install 'driftline\[postgres\]'") as err:
        sqlview.engine("postgresql://u:secret@db.example/view")
    assert "\n" not in str(err.value) and "secret" not in str(err.value)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql+nosuchdriver://u@h/db", "driver is not installed"),
        ("not a url", "is not a SQLAlchemy URL"),
    ],
)
def test_other_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        sqlview.engine(url)
    assert "driftline[postgres]" not in str(err.value)
