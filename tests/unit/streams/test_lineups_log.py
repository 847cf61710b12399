"""The registry follower's log: one INFO line per model once caught up, then one per
champion switch, one per change of the challengers and one per challenger in or out of
shadow, with the registry offset of the record that made it; retirement said in words."""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest

from driftline.core.lifecycle.registry import Registry, retire, transition, unretire
from driftline.core.lifecycle.training import bootstrap, train
from driftline.core.model.config import ModelConfig
from driftline.core.wire.codec import default_codec
from driftline.settings import Settings
from driftline.streams.lineups import Lineups
from tests.unit.core.examples import T0

CODEC = default_codec()
SETTINGS = Settings(bootstrap_servers="127.0.0.1:1", topic_prefix="t.")
KEY = SETTINGS.signing_key.get_secret_value().encode()


def records(seed: int, current: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A real version of churn (signed artifact): candidate, then champion (archiving
    ``current``'s champion)."""
    rng = random.Random(seed)
    rows = []
    for i in range(500):  # 100 held out: the gate's min_holdout_rows
        x = rng.random() * 10
        rows.append({"event_time_ms": T0 + i, "features": {"x": x}, "label": x > 5})
    config = ModelConfig("churn", factory="logistic_regression", seed=seed)
    _, out = bootstrap(rows, config, key=KEY, by="test", reason="unit test",
                       now_ms=T0 + seed, current=current, host="h", code="0")  # fmt: skip
    return out


def test_switches_are_logged_once_caught_up(caplog: pytest.LogCaptureFixture) -> None:
    follower = Lineups(SETTINGS, CODEC)
    try:
        first = records(1, [])
        second = records(2, [first[-1]])
        v1, v2 = first[-1]["version"], second[-1]["version"]
        assert v1 != v2
        with caplog.at_level(logging.INFO, logger="driftline.streams.registry"):
            for offset, r in enumerate(first):
                follower.follower.apply(f"churn/{r['version']}".encode(),
                                        CODEC.encode("ModelVersion", r), offset)  # fmt: skip
            follower._reload()  # catching up: nothing logged yet
            follower.ready.set()
            follower.announce()
            for offset, r in enumerate(second, start=10):
                follower.follower.apply(f"churn/{r['version']}".encode(),
                                        CODEC.encode("ModelVersion", r), offset)  # fmt: skip
            follower._reload()
            follower._reload()  # nothing changed: no line
    finally:
        follower.follower.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "driftline.streams.registry"]
    champion_of_second = 10 + [r["stage"] for r in second].index("champion")
    assert lines == [
        f"registry: serving churn champion {v1} (registry offset 1)",
        f"registry: churn champion {v1} -> {v2} (registry offset {champion_of_second})",
    ]


def test_challengers_and_retirement_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Several challengers: one line per challenger that starts or stops scoring in
    shadow; a retired model: its champion and challengers leave, and one line says why
    its events are dead-lettered; unretired, it is served again."""
    follower = Lineups(SETTINGS, CODEC)
    offset = 0

    def feed(out: list[dict[str, Any]]) -> None:
        nonlocal offset
        for r in out:
            reg.apply(r)
            follower.follower.apply(f"churn/{r['version']}".encode(),
                                    CODEC.encode("ModelVersion", r), offset)  # fmt: skip
            offset += 1
        follower._reload()

    try:
        reg = Registry()
        first = records(1, [])
        feed(first)
        v1 = first[-1]["version"]
        follower.ready.set()
        config = ModelConfig("churn", factory="logistic_regression", seed=3)
        rows = [{"event_time_ms": T0 + i, "features": {"x": i % 10}, "label": i % 10 > 4}
                for i in range(500)]  # fmt: skip
        with caplog.at_level(logging.INFO, logger="driftline.streams.registry"):
            shadow: list[str] = []
            for i in (1, 2):
                run = train(rows, config, key=KEY, now_ms=T0 + 100 + i, host="h", code="0",
                            existing_versions=[v1, *shadow])  # fmt: skip
                shadow.append(run.record["version"])
                feed([run.record])
                feed(transition(reg, "churn", shadow[-1], "challenger", by="t", reason="r",
                                now_ms=T0 + 200 + i))  # fmt: skip
            follower.announce()
            at = offset
            feed(retire(reg, "churn", by="t", reason="r", now_ms=T0 + 300))  # c1, c2, champion
            assert follower.retired("churn") and follower.lineup("churn") == (None, ())
            retired = follower.retired_champion("churn")
            assert retired is not None and retired["version"] == v1
            follower.announce()
            feed(unretire(reg, "churn", by="t", reason="r", now_ms=T0 + 400))
            champion = follower.lineup("churn")[0]
            assert not follower.retired("churn") and champion is not None
            assert champion.version == v1
    finally:
        follower.follower.close()
    c1, c2 = shadow
    lines = [r.getMessage() for r in caplog.records if r.name == "driftline.streams.registry"]
    assert lines == [
        f"registry: churn challenger none -> {c1} (registry offset 3)",
        f"registry: churn challenger {c1} added; 1 in shadow (registry offset 3)",
        f"registry: churn challengers {c1} -> {c1}, {c2} (registry offset 5)",
        f"registry: churn challenger {c2} added; 2 in shadow (registry offset 5)",
        f"registry: serving churn champion {v1}, challengers {c1}, {c2} (registry offset 1)",
        f"registry: churn champion {v1} -> none (registry offset {at + 2})",
        f"registry: churn challengers {c1}, {c2} -> none (registry offset {at + 1})",
        f"registry: churn challenger {c1} dropped, now retired; 0 in shadow (registry offset {at})",
        f"registry: churn challenger {c2} dropped, now retired; 0 in shadow"
        f" (registry offset {at + 1})",
        "registry: churn retired: not served, its events are dead-lettered (model_retired)",
        "registry: churn is retired: not served (driftline models unretire churn)",
        f"registry: churn champion none -> {v1} (registry offset {at + 5})",
        f"registry: churn challengers none -> {c1}, {c2} (registry offset {at + 4})",
        f"registry: churn challenger {c1} added; 2 in shadow (registry offset {at + 3})",
        f"registry: churn challenger {c2} added; 2 in shadow (registry offset {at + 4})",
    ]
