"""Topic declarations and the declared-vs-actual diff (no broker)."""

from __future__ import annotations

import pytest

from driftline.core.wire.topics import TopicSpec, declare, diff

NAMES = {
    "features",
    "predictions",
    "predictions.shadow",
    "labels",
    "outcomes",
    "metrics",
    "alerts",
    "retrain",
    "registry",
    "deadletter",
}


def test_every_design_topic_is_declared_with_the_prefix() -> None:
    specs = declare("p.", data_partitions=4, replication_factor=3)
    assert {s.name for s in specs} == {f"p.{n}" for n in NAMES}
    assert all(s.replication_factor == 3 for s in specs)
    assert all(s.configs["cleanup.policy"] in ("delete", "compact") for s in specs)
    assert all(s.configs["min.insync.replicas"] == "2" for s in specs)


@pytest.mark.parametrize(("replicas", "min_isr"), [(1, None), (2, None), (3, "2"), (5, "2")])
def test_min_insync_replicas_is_declared_with_three_replicas_or_more(
    replicas: int, min_isr: str | None
) -> None:
    """acks=all counts for something only with a min ISR above 1; with 2 replicas, a
    min ISR of 2 would stop every write while either broker is away."""
    for s in declare("p.", 4, replicas):
        assert s.configs.get("min.insync.replicas") == min_isr, s.name


def test_join_topics_are_co_partitioned_and_registry_is_compacted() -> None:
    specs = {s.name.removeprefix("p."): s for s in declare("p.", 4, 1)}
    assert {specs[n].partitions for n in ("predictions", "labels", "outcomes")} == {4}
    assert all(specs[n].key == "event_id" for n in ("predictions", "labels", "outcomes"))
    assert specs["registry"].configs["cleanup.policy"] == "compact"
    assert specs["registry"].partitions == 1
    assert int(specs["outcomes"].configs["retention.ms"]) > int(
        specs["features"].configs["retention.ms"]
    )


@pytest.mark.parametrize(
    ("actual", "in_sync", "problem"),
    [
        (None, False, None),
        (
            {"partitions": 4, "replication_factor": 1, "configs": {"cleanup.policy": "delete"}},
            True,
            None,
        ),
        (
            {"partitions": 4, "replication_factor": 1, "configs": {"cleanup.policy": "compact"}},
            False,
            None,
        ),
        (
            {"partitions": 8, "replication_factor": 1, "configs": {"cleanup.policy": "delete"}},
            False,
            "cannot remove partitions",
        ),
        (
            {"partitions": 2, "replication_factor": 1, "configs": {"cleanup.policy": "delete"}},
            False,
            "breaks the join",
        ),
        (
            {"partitions": 4, "replication_factor": 2, "configs": {"cleanup.policy": "delete"}},
            False,
            "replication factor 2",
        ),
    ],
)
def test_diff(actual: dict[str, object] | None, in_sync: bool, problem: str | None) -> None:
    spec = TopicSpec("t", 4, 1, {"cleanup.policy": "delete"}, co_partitioned=True)
    d = diff(spec, actual)
    assert d.in_sync is in_sync
    problems = d.problems()
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


@pytest.mark.parametrize("bad", [{"partitions": 0}, {"replication_factor": 0}])
def test_spec_checks_its_arguments(bad: dict[str, int]) -> None:
    args = {"name": "t", "partitions": 1, "replication_factor": 1} | bad
    with pytest.raises(ValueError, match="must be >= 1"):
        TopicSpec(**args)  # type: ignore[arg-type]
