"""The declared ACLs of Driftline's principals (no broker; tests/integration/test_security.py
enforces them on a secured one)."""

from __future__ import annotations

from click.testing import CliRunner

from driftline.cli import cli
from driftline.kafka import acls
from driftline.settings import Settings

S = Settings(topic_prefix="dl.", client_id="dl")


def topic_ops(user: str, op: str) -> set[str]:
    """The Driftline topics (suffixes) ``user`` may ``op``; prefixed grants listed raw."""
    out = set()
    for g in acls.declare(S):
        if g.principal == f"User:{user}" and g.resource == "topic" and g.operation == op:
            out.add(g.name.removeprefix("dl.") if g.pattern == "literal" else g.name + "*")
    return out


def test_the_app_writes_only_features_and_labels_and_reads_only_outputs() -> None:
    assert topic_ops("app", "WRITE") == {"features", "labels"}
    assert topic_ops("app", "READ") == {"predictions", "alerts", "retrain"}
    assert topic_ops("app", "CREATE") == set()


def test_the_scorer_may_not_write_the_registry_nor_the_trainer_predictions() -> None:
    assert "registry" not in topic_ops("scorer", "WRITE")
    assert topic_ops("scorer", "WRITE") == {
        "predictions", "predictions.shadow", "outcomes", "deadletter", "metrics", "alerts",
        "retrain", "dl-worker*",
    }  # fmt: skip
    assert topic_ops("trainer", "WRITE") == {"registry", "alerts"}
    assert topic_ops("trainer", "READ") == {"retrain", "outcomes", "registry"}


def test_no_prefixed_topic_grant_covers_a_driftline_topic() -> None:
    # A prefixed "dl.predictions" would also cover "dl.predictions.shadow".
    for g in acls.declare(S):
        if g.resource == "topic" and g.pattern == "prefixed":
            assert not g.name.startswith("dl."), g


def test_the_worker_prefix_is_its_faust_app_id() -> None:
    assert acls.worker_prefix(S) == "dl-worker"
    groups = {g.name for g in acls.declare(S) if g.principal == "User:scorer" and
              g.resource == "group"}  # fmt: skip
    assert groups == {"dl-worker", "dl-registry"}


def test_other_user_names_and_app_groups() -> None:
    names = acls.Principals(scorer="s1", trainer="t1", app="shop", app_group_prefix="shop-")
    grants = acls.declare(S, names)
    assert {g.principal for g in grants} == {"User:s1", "User:t1", "User:shop"}
    assert ("User:shop", "group", "shop-", "prefixed", "READ") in grants


def test_cli_prints_the_table() -> None:
    result = CliRunner().invoke(cli, ["acls"], env={"DRIFTLINE_TOPIC_PREFIX": "dl."})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(
        line.split() == ["User:app", "topic", "dl.features", "DESCRIBE,WRITE"] for line in lines
    )
    assert not any("User:admin" in line for line in lines)
