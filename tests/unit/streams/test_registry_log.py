"""The registry follower's log: one INFO line per model once caught up, then one per
champion switch, with the registry offset of the record that made it."""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest

from driftline.core.lifecycle.training import bootstrap
from driftline.core.model.config import ModelConfig
from driftline.core.wire.codec import default_codec
from driftline.settings import Settings
from driftline.streams.registry import RegistryFollower
from tests.unit.core.examples import T0

CODEC = default_codec()
SETTINGS = Settings(bootstrap_servers="127.0.0.1:1", topic_prefix="t.")
KEY = SETTINGS.signing_key.get_secret_value().encode()


def records(seed: int, current: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A real version of churn (signed artifact): candidate, then champion (archiving
    ``current``'s champion)."""
    rng = random.Random(seed)
    rows = []
    for i in range(200):
        x = rng.random() * 10
        rows.append({"event_time_ms": T0 + i, "features": {"x": x}, "label": x > 5})
    config = ModelConfig("churn", factory="logistic_regression", seed=seed)
    _, out = bootstrap(rows, config, key=KEY, by="test", reason="unit test",
                       now_ms=T0 + seed, current=current, host="h", code="0")  # fmt: skip
    return out


def test_switches_are_logged_once_caught_up(caplog: pytest.LogCaptureFixture) -> None:
    follower = RegistryFollower(SETTINGS, CODEC)
    try:
        first = records(1, [])
        second = records(2, [first[-1]])
        v1, v2 = first[-1]["version"], second[-1]["version"]
        assert v1 != v2
        with caplog.at_level(logging.INFO, logger="driftline.streams.registry"):
            for offset, r in enumerate(first):
                follower._apply(f"churn/{r['version']}".encode(), CODEC.encode("ModelVersion", r),
                                offset)  # fmt: skip
            follower._reload()  # catching up: nothing logged yet
            follower.ready.set()
            follower.announce()
            for offset, r in enumerate(second, start=10):
                follower._apply(f"churn/{r['version']}".encode(), CODEC.encode("ModelVersion", r),
                                offset)  # fmt: skip
            follower._reload()
            follower._reload()  # nothing changed: no line
    finally:
        follower.consumer.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "driftline.streams.registry"]
    champion_of_second = 10 + [r["stage"] for r in second].index("champion")
    assert lines == [
        f"registry: serving churn champion {v1} (registry offset 1)",
        f"registry: churn champion {v1} -> {v2} (registry offset {champion_of_second})",
    ]
