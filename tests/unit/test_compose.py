"""docker-compose.yml cannot run here (no Docker engine), so check what can be checked:
valid YAML, only existing services, images pinned, paths present, env vars and
commands that Driftline really has; and that its Kafka, alone or as the three nodes of
the `cluster` profile (infra/compose/cluster.env), has the settings of the dev broker or
of the dev cluster."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from driftline.cli import cli
from driftline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

Compose = dict[str, Any]
"""docker-compose.yml as YAML reads it."""


@pytest.fixture(scope="module")
def compose() -> Compose:
    doc: Compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return doc


def env_file(path: Path) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in path.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )  # fmt: skip


CLUSTER_ENV = env_file(ROOT / "infra/compose/cluster.env")


def interpolate(value: object, env: dict[str, str]) -> str:
    """``${VAR:-default}`` and ``${VAR}`` as Compose substitutes them.

    >>> interpolate("${A:-1}@x,${B}", {"B": "2"})
    '1@x,2'
    """

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(3)
        return env.get(name) or (default if default is not None else "")

    return re.sub(r"\$\{(\w+)(:-([^}]*))?\}", sub, str(value))


def properties(name: str) -> dict[str, str]:
    return {k: v.strip() for k, v in env_file(ROOT / "infra/kafka" / name).items()}


def kafka_services(compose: Compose, profile: str | None) -> dict[str, dict[str, str]]:
    """The Kafka services a profile starts, with their environment interpolated."""
    env = CLUSTER_ENV if profile == "cluster" else {}
    return {
        name: {k: interpolate(v, env) for k, v in svc["environment"].items()}
        for name, svc in compose["services"].items()
        if svc.get("image", "").startswith("apache/kafka")
        and (not svc.get("profiles") or profile in svc["profiles"])
    }


BROKER_KEYS = (
    "default.replication.factor",
    "min.insync.replicas",
    "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "group.initial.rebalance.delay.ms",
    "auto.create.topics.enable",
)


def test_services_and_dependencies_exist(compose: Compose) -> None:
    services = compose["services"]
    assert {"kafka", "worker", "trainer", "prometheus", "alertmanager", "grafana"} <= set(services)
    for name, svc in services.items():
        for dep in svc.get("depends_on", []):
            assert dep in services, f"{name} depends on unknown service {dep}"


def test_images_are_pinned(compose: Compose) -> None:
    for name, svc in compose["services"].items():
        image = svc.get("image")
        assert image, f"{name} has no image"
        assert ":" in image and not image.endswith(":latest"), f"{name}: unpinned {image}"


def test_driftline_env_vars_are_settings_fields(compose: Compose) -> None:
    fields = {f"DRIFTLINE_{n.upper()}" for n in Settings.model_fields}
    for name, svc in compose["services"].items():
        for var in svc.get("environment", {}) or {}:
            if var.startswith("DRIFTLINE_"):
                assert var in fields, f"{name}: {var} is no Driftline setting"


def test_mounted_paths_and_build_context_exist(compose: Compose) -> None:
    for name, svc in compose["services"].items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("."):
                assert (ROOT / src).exists(), f"{name} mounts missing {src}"
        if "build" in svc:
            assert (ROOT / svc["build"] / "Dockerfile").is_file()


def test_kafka_settings_match_the_dev_broker(compose: Compose) -> None:
    nodes = kafka_services(compose, None)
    assert list(nodes) == ["kafka"]
    env, props = nodes["kafka"], properties("server.properties")
    for key in BROKER_KEYS:
        env_key = "KAFKA_" + key.upper().replace(".", "_")
        assert env[env_key].lower() == props[key].lower(), key
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    driftline = {k: interpolate(v, {}) for k, v in compose["x-driftline-env"].items()}
    assert driftline["DRIFTLINE_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert driftline["DRIFTLINE_REPLICATION_FACTOR"] == "1"


def test_the_cluster_profile_matches_the_dev_cluster(compose: Compose) -> None:
    assert CLUSTER_ENV["COMPOSE_PROFILES"] == "cluster"
    nodes = kafka_services(compose, "cluster")
    assert list(nodes) == ["kafka", "kafka-2", "kafka-3"]
    props = properties("server-cluster.properties")
    voters = []
    for name, env in nodes.items():
        for key in (*BROKER_KEYS, "unclean.leader.election.enable",
                    "broker.session.timeout.ms", "broker.heartbeat.interval.ms"):  # fmt: skip
            env_key = "KAFKA_" + key.upper().replace(".", "_")
            assert env[env_key].lower() == props[key].lower(), (name, key)
        assert env["KAFKA_PROCESS_ROLES"] == props["process.roles"]
        assert f"PLAINTEXT://{name}:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
        voters.append(f"{env['KAFKA_NODE_ID']}@{name}:9093")
    assert [env["KAFKA_CONTROLLER_QUORUM_VOTERS"] for env in nodes.values()] == [
        ",".join(voters)] * 3  # fmt: skip
    assert len({env["CLUSTER_ID"] for env in nodes.values()}) == 1  # one cluster
    assert len({env["KAFKA_NODE_ID"] for env in nodes.values()}) == 3
    driftline = {k: interpolate(v, CLUSTER_ENV) for k, v in compose["x-driftline-env"].items()}
    assert driftline["DRIFTLINE_BOOTSTRAP_SERVERS"].split(",") == [
        f"{name}:9092" for name in nodes]  # fmt: skip
    assert driftline["DRIFTLINE_REPLICATION_FACTOR"] == "3"
    # the topics wait for every node of the profile, and only of it
    deps = compose["services"]["topics"]["depends_on"]
    assert set(deps) == set(nodes)
    assert [deps[n].get("required", True) for n in nodes] == [True, False, False]
    ports = [p for svc in nodes for p in compose["services"][svc].get("ports", [])]
    assert len(ports) == len(set(ports))


def _command_exists(words: list[str]) -> bool:
    group: click.Command = cli
    for w in words:
        if w.startswith("-"):
            break
        if not isinstance(group, click.Group) or w not in group.commands:
            return False
        group = group.commands[w]
    return True


def test_every_driftline_command_and_option_exists(compose: Compose) -> None:
    from click.testing import CliRunner

    driftline = [
        n for n, svc in compose["services"].items() if svc.get("image") == "driftline:local"
    ]
    assert {"topics", "worker", "trainer", "projector"} <= set(driftline)
    for name in driftline:
        words = compose["services"][name]["command"]
        assert _command_exists(words), f"{name}: driftline {' '.join(words)} does not exist"
        first_option = next((i for i, w in enumerate(words) if w.startswith("-")), len(words))
        sub = words[:first_option]
        options = [w for w in words if w.startswith("--")]
        if options:  # the options are the command's own (its --help lists them)
            out = CliRunner().invoke(cli, [*sub, "--help"]).output
            for opt in options:
                assert opt in out, f"{name}: {opt} is no option of driftline {sub}"


def test_prometheus_sends_alerts_to_the_alertmanager_of_the_repo(compose: Compose) -> None:
    """The Alertmanager service runs infra/alertmanager/alertmanager.yml (the file the
    integration test runs with Debian's binary), on the port Prometheus sends to."""
    am = compose["services"]["alertmanager"]
    assert "./infra/alertmanager:/etc/alertmanager:ro" in am["volumes"]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in am["command"]
    assert "9093:9093" in am["ports"]
    assert "alertmanager" in compose["services"]["prometheus"]["depends_on"]
    prom = yaml.safe_load((ROOT / "infra" / "prometheus" / "prometheus.yml").read_text())
    (target,) = [t for am in prom["alerting"]["alertmanagers"]
                 for sc in am["static_configs"] for t in sc["targets"]]  # fmt: skip
    assert target == "alertmanager:9093"
