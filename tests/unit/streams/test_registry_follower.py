"""The registry follower gives the scorer a model's champion and every challenger it
serves (a tuple: the registry will hold more than one)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pytest

from driftline.core.lifecycle.registry import Registry
from driftline.core.wire.codec import default_codec
from driftline.settings import Settings
from driftline.streams.registry import RegistryFollower

SETTINGS = Settings(bootstrap_servers="127.0.0.1:1", topic_prefix="t.", data_partitions=3)


@dataclass(frozen=True)
class Loaded:
    version: str


def record(version: str, stage: str) -> dict[str, Any]:
    return {"model": "churn", "version": version, "stage": stage, "gate": None,
            "stage_changed_at_ms": 1, "stage_changed_by": "t", "stage_reason": "r",
            "created_at_ms": int(version[1:])}  # fmt: skip


class Several(Registry):
    """A registry that lists several challengers (as the registry soon will)."""

    def challengers(self, model: str) -> list[dict[str, Any]]:
        return [r for r in self.versions(model) if r["stage"] == "challenger"]


@pytest.mark.parametrize(
    ("registry", "records", "challengers"),
    [
        (Registry, [record("v1", "champion")], ()),
        (Registry, [record("v1", "champion"), record("v2", "challenger")], ("v2",)),
        (Several, [record("v1", "champion"), record("v2", "challenger"),
                   record("v3", "challenger")], ("v2", "v3")),
    ],
)  # fmt: skip
def test_versions_give_the_champion_and_a_tuple_of_challengers(
    registry: type[Registry], records: list[dict[str, Any]], challengers: tuple[str, ...],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    follower = RegistryFollower(SETTINGS, default_codec())
    follower.registry = registry.from_records(records)
    monkeypatch.setattr(follower, "_load", lambda r: None if r is None else Loaded(r["version"]))
    follower._reload()
    champion, served = follower.versions("churn")
    assert champion == Loaded("v1")
    assert tuple(c.version for c in served) == challengers
    assert follower.versions("other") == (None, ())
    follower.consumer.close()


def test_challenger_changes_are_logged_with_every_challenger(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once caught up, the follower logs what it serves (every challenger) and then one
    line per change of the challengers, with the registry offset of the record that made
    it (the newest one added, else the newest one gone)."""
    follower = RegistryFollower(SETTINGS, default_codec())
    monkeypatch.setattr(follower, "_load", lambda r: None if r is None else Loaded(r["version"]))
    follower._offsets = {("churn", "v1"): 3, ("churn", "v2"): 7, ("churn", "v3"): 9}
    champion = record("v1", "champion")
    states = [
        [champion, record("v2", "challenger")],
        [champion, record("v2", "challenger"), record("v3", "challenger")],
        [champion, record("v2", "challenger"), record("v3", "challenger")],  # no change
        [champion],
    ]
    try:
        follower.registry = Several.from_records([champion, record("v3", "challenger")])
        follower._reload()  # catching up: nothing logged
        with caplog.at_level(logging.INFO, logger="driftline.streams.registry"):
            follower.ready.set()
            follower.announce()
            follower.registry = Several.from_records([champion])
            follower._reload()
            for records in states:
                follower.registry = Several.from_records(records)
                follower._reload()
    finally:
        follower.consumer.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "driftline.streams.registry"]
    assert lines == [
        "registry: serving churn champion v1, challenger v3 (registry offset 3)",
        "registry: churn challenger v3 -> none (registry offset 9)",
        "registry: churn challenger none -> v2 (registry offset 7)",
        "registry: churn challengers v2 -> v2, v3 (registry offset 9)",
        "registry: churn challengers v2, v3 -> none (registry offset 9)",
    ]
