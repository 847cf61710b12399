"""The local cluster as every `driftline` command finds it (driftline/broker.py), without
starting one: a directory laid out as infra/kafka/cluster.sh leaves it, with processes
that look like Kafka nodes."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driftline import broker
from driftline.core.errors import ConfigError
from driftline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def fake_node(tmp: Path) -> subprocess.Popen[bytes]:
    """A process whose command line says kafka.Kafka, as a node's JVM does."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "kafka.Kafka"])
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    for _ in range(500):
        if b"kafka.Kafka" in cmdline.read_bytes():
            break
        time.sleep(0.01)
    return proc


@pytest.fixture
def cluster_dir(tmp_path: Path) -> Iterator[tuple[Path, list[subprocess.Popen[bytes]]]]:
    d = tmp_path / "cluster"
    d.mkdir()
    (d / broker.CLUSTER_MARKER).touch()
    (d / "nodes").write_text("3\n")
    voters = ",".join(f"{k}@127.0.0.1:{20000 + k}" for k in (1, 2, 3))
    procs = []
    for k in (1, 2, 3):
        node = d / f"node{k}"
        node.mkdir()
        (node / "node.conf").write_text(
            f"node_id={k}\nvoters={voters}\nport={10000 + k}\ncontroller_port={20000 + k}\n"
        )
        if k != 2:  # node 2 is down
            procs.append(fake_node(tmp_path))
            (node / "broker.pid").write_text(f"{procs[-1].pid}\n")
    try:
        yield d, procs
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_the_nodes_and_their_running_addresses(
    cluster_dir: tuple[Path, list[subprocess.Popen[bytes]]],
) -> None:
    d, procs = cluster_dir
    assert broker.is_cluster(d)
    nodes = broker.nodes(d)
    assert [(n.id, n.port, n.controller_port) for n in nodes] == [
        (1, 10001, 20001), (2, 10002, 20002), (3, 10003, 20003)]  # fmt: skip
    assert [n.pid() for n in nodes] == [procs[0].pid, None, procs[1].pid]
    # the bootstrap servers are the nodes that run
    assert broker.running(d) == "127.0.0.1:10001,127.0.0.1:10003"
    for p in procs:
        p.kill()
        p.wait()
    assert broker.running(d) is None


def test_every_command_uses_the_cluster_and_three_replicas(
    cluster_dir: tuple[Path, list[subprocess.Popen[bytes]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    d, _ = cluster_dir
    monkeypatch.delenv("DRIFTLINE_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("DRIFTLINE_REPLICATION_FACTOR", raising=False)
    monkeypatch.setenv("DRIFTLINE_BROKER_DIR", str(d))
    s, why = broker.resolve(Settings())
    assert (s.bootstrap_servers, s.replication_factor) == ("127.0.0.1:10001,127.0.0.1:10003", 3)
    assert why == f"the local cluster in {d}"
    monkeypatch.setenv("DRIFTLINE_REPLICATION_FACTOR", "2")  # the user's word wins
    assert broker.resolve(Settings())[0].replication_factor == 2
    monkeypatch.setenv("DRIFTLINE_BOOTSTRAP_SERVERS", "kafka-1:9092")
    s, why = broker.resolve(Settings())
    assert (s.bootstrap_servers, why) == ("kafka-1:9092", "DRIFTLINE_BOOTSTRAP_SERVERS")


def test_a_single_broker_directory_is_no_cluster(tmp_path: Path) -> None:
    assert not broker.is_cluster(tmp_path)
    assert broker.nodes(tmp_path) == []
    assert broker.running(tmp_path) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nodes": 2}, "at least 3 nodes"),
        ({"nodes": 3, "security": True}, "plaintext only"),
        ({"nodes": 3, "port": "9092"}, "picks free ports"),
    ],
)
def test_cluster_options_that_cannot_work_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        broker.up(**kwargs)


def test_the_cluster_template_replicates_everything_three_times() -> None:
    props = dict(
        line.split("=", 1)
        for line in (ROOT / "infra/kafka/server-cluster.properties").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "@VOTERS@"
    for key in ("default.replication.factor", "offsets.topic.replication.factor",
                "transaction.state.log.replication.factor",
                "share.coordinator.state.topic.replication.factor"):  # fmt: skip
        assert props[key] == "3", key
    for key in ("min.insync.replicas", "transaction.state.log.min.isr",
                "share.coordinator.state.topic.min.isr"):  # fmt: skip
        assert props[key] == "2", key
    assert props["unclean.leader.election.enable"] == "false"
