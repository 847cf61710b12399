"""Subscriber options are checked before any consumer is created (no broker)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from driftline.client import AsyncSubscriber, Prediction, Subscriber
from driftline.client.received import start_ms
from driftline.core.errors import ConfigError
from driftline.settings import Settings


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        ("earliest", None),
        ("latest", None),
        (0, 0),
        (1_700_000_000_000, 1_700_000_000_000),
        (datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC), 1_700_000_000_000),
    ],
)
def test_start_positions(start, expected) -> None:
    assert start_ms(start) == expected


@pytest.mark.parametrize(
    ("start", "message"),
    [
        (datetime(2023, 11, 14), "timezone-aware"),
        (-1, ">= 0"),
        (True, "earliest"),
        ("beginning", "earliest"),
        (1.5, "earliest"),
    ],
)
def test_bad_start_positions_are_refused(start, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        start_ms(start)


@pytest.mark.parametrize("cls", [Subscriber, AsyncSubscriber])
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"commit": "sometimes"}, "commit must be"),
        ({"on_error": "ignore"}, "on_error must be"),
        ({"app": ""}, "app must be"),
        ({"batch_size": 0}, "batch_size"),
        ({"start": "now"}, "start must be"),
    ],
)
def test_bad_options_are_refused(cls, kwargs: dict[str, Any], message: str) -> None:
    options = {"app": "unit", **kwargs}
    with pytest.raises(ConfigError, match=message):
        cls(Prediction, Settings(bootstrap_servers="127.0.0.1:1"), **options)


def test_only_record_classes_can_be_subscribed() -> None:
    with pytest.raises(ConfigError, match="record class"):
        Subscriber(dict, Settings(bootstrap_servers="127.0.0.1:1"), app="unit")  # type: ignore[type-var]
