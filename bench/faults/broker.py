"""The harness's own single-node broker (infra/kafka/broker.sh), so it can kill it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from driftline import broker


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Broker:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.bootstrap = ""

    def up(self) -> str:
        port = self.bootstrap.rsplit(":", 1)[1] if self.bootstrap else "auto"
        got = broker.up(port, self.dir)
        if self.bootstrap and got != self.bootstrap:
            raise RuntimeError(f"broker came back on {got}, not {self.bootstrap}")
        self.bootstrap = got
        return got

    def pid(self) -> int:
        return int((self.dir / "broker.pid").read_text().strip())

    def kill(self) -> None:
        """SIGKILL the broker's JVM and wait until it is gone."""
        pid = self.pid()
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.05)

    def down(self, purge: bool) -> None:
        broker.down(self.dir, purge=purge)


class Cluster:
    """The harness's own cluster of KRaft nodes (infra/kafka/cluster.sh: each node broker
    and controller, replication factor 3, min.insync.replicas 2), so that it can kill,
    stop, pause and restart each node. Nodes are numbered 1..n (their node ids)."""

    def __init__(self, directory: Path, n: int = 3) -> None:
        self.dir = directory
        self.n = n
        self.bootstrap = ""
        self.nodes: dict[int, broker.Node] = {}

    def up(self) -> str:
        self.bootstrap = broker.up(directory=self.dir, nodes=self.n)
        self.nodes = {node.id: node for node in broker.nodes(self.dir)}
        return self.bootstrap

    def pid(self, k: int) -> int:
        pid = self.nodes[k].pid()
        if pid is None:
            raise RuntimeError(f"node {k} does not run")
        return pid

    def kill(self, k: int) -> None:
        """SIGKILL node k's JVM and wait until it is gone."""
        pid = self.pid(k)
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.05)

    def stop(self, k: int) -> None:
        """Stop node k cleanly (SIGTERM: a controlled shutdown, which moves its
        partitions' leadership to the other nodes first)."""
        broker.run("down", "--dir", str(self.nodes[k].dir))

    def start(self, k: int) -> None:
        """Start node k on its ports and data; returns once it serves requests."""
        broker.run("up", "--dir", str(self.nodes[k].dir), capture=True)

    def signal(self, k: int, sig: int) -> None:
        os.kill(self.pid(k), sig)

    def controller(self) -> int | None:
        """The node id of the active controller."""
        return broker.active_controller(self.dir)

    def down(self, purge: bool) -> None:
        for node in self.nodes.values():  # a paused node would not shut down
            pid = node.pid()
            if pid is not None:
                os.kill(pid, signal.SIGCONT)
        broker.down(self.dir, purge=purge)
