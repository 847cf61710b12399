"""The local development broker: a thin wrapper over ``infra/kafka/broker.sh`` (one
node) and ``infra/kafka/cluster.sh`` (a cluster of three or more), and which broker the
``driftline`` command talks to.

The broker scripts live in the source checkout (``infra/kafka``); set
``DRIFTLINE_HOME`` to a checkout when Driftline is installed elsewhere.

One rule for every command (:func:`resolve`): the bootstrap servers are
``DRIFTLINE_BOOTSTRAP_SERVERS`` when it is set; else the local broker when one runs in
the broker directory (``DRIFTLINE_BROKER_DIR``, default ~/.cache/driftline/broker,
:func:`directory`); else the settings' default, 127.0.0.1:9092. Security comes from the
same settings (``DRIFTLINE_SECURITY_PROTOCOL``, ``DRIFTLINE_SASL_*``, ...). When the
local broker is a cluster (``driftline broker up --nodes 3``), the bootstrap servers are
its running nodes, and the replication factor of the topics Driftline creates is 3
unless ``DRIFTLINE_REPLICATION_FACTOR`` says otherwise.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from driftline.core.errors import ConfigError, DriftlineError
from driftline.settings import Settings


def home() -> Path:
    """The source checkout that holds ``infra/``."""
    env = os.environ.get("DRIFTLINE_HOME")
    root = Path(env) if env else Path(__file__).resolve().parent.parent
    if not (root / "infra" / "kafka" / "broker.sh").is_file():
        raise ConfigError(
            f"no infra/kafka/broker.sh under {root}: the local broker needs a Driftline "
            "source checkout; set DRIFTLINE_HOME to it, or point DRIFTLINE_BOOTSTRAP_SERVERS "
            "at an existing Kafka cluster"
        )
    return root


def directory(settings: Settings) -> Path:
    """The local broker's directory: ``DRIFTLINE_BROKER_DIR``, else
    ``$XDG_CACHE_HOME/driftline/broker`` (``~/.cache/driftline/broker``); the same rule as
    infra/kafka/common.sh. Outside the checkout, one per machine like the port 9092."""
    return settings.broker_dir if settings.broker_dir is not None else _default_directory()


CLUSTER_MARKER = ".driftline-cluster"
"""The file cluster.sh puts in a cluster's directory (a single broker's has
``.driftline-broker``)."""


@dataclass(frozen=True)
class Node:
    """One node of a local cluster: its directory (a broker.sh directory), id and ports."""

    id: int
    dir: Path
    port: int
    controller_port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def pid(self) -> int | None:
        """The pid of the node's JVM while it runs, else None."""
        return _pid(self.dir)


def _pid(path: Path) -> int | None:
    """The pid broker.sh recorded in ``path`` if that process still runs Kafka."""
    try:
        pid = int((path / "broker.pid").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    if stat.rsplit(")", 1)[1].split()[0] == "Z":
        return None
    return pid if b"kafka.Kafka" in cmdline else None


def is_cluster(path: Path) -> bool:
    """Does ``path`` hold a cluster (cluster.sh) rather than a single broker?"""
    return (path / CLUSTER_MARKER).exists()


def nodes(path: Path) -> list[Node]:
    """The nodes of the cluster in ``path``, as its node.conf files record them (empty
    when ``path`` holds no cluster)."""
    try:
        count = int((path / "nodes").read_text().strip())
    except (OSError, ValueError):
        return []
    out = []
    for k in range(1, count + 1):
        d = path / f"node{k}"
        try:
            conf = dict(
                line.split("=", 1) for line in (d / "node.conf").read_text().splitlines()
                if "=" in line
            )  # fmt: skip
            out.append(Node(k, d, int(conf["port"]), int(conf["controller_port"])))
        except (OSError, ValueError, KeyError):
            continue
    return out


def _default_directory() -> Path:
    """``DRIFTLINE_BROKER_DIR``, else the cache directory's ``driftline/broker``."""
    env = os.environ.get("DRIFTLINE_BROKER_DIR")
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(env) if env else Path(cache) / "driftline" / "broker"


def running(path: Path) -> str | None:
    """The bootstrap servers of the broker that runs from ``path``: ``127.0.0.1:PORT``,
    or for a cluster its running nodes (``127.0.0.1:P1,127.0.0.1:P2,...``); None when
    nothing runs there."""
    if is_cluster(path):
        live = [n.address for n in nodes(path) if n.pid() is not None]
        return ",".join(live) or None
    try:
        port = int((path / "broker.port").read_text().strip())
    except (OSError, ValueError):
        return None
    return f"127.0.0.1:{port}" if _pid(path) is not None else None


def active_controller(path: Path) -> int | None:
    """The node id of the cluster's active controller (the KRaft quorum's leader), asked
    of its running nodes (``kprobe.py quorum``); None when none answers."""
    ports = [str(n.port) for n in nodes(path) if n.pid() is not None]
    if not ports:
        return None
    cmd = ["python3", str(script("kprobe.py")), "quorum", *ports]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    fields = dict(f.split("=", 1) for f in out.split() if "=" in f)
    return int(fields["leader"]) if fields.get("leader", "").isdigit() else None


CLUSTER_REPLICATION = 3
"""The replication factor of Driftline's topics on a local cluster (its nodes' default,
infra/kafka/server-cluster.properties)."""


def resolve(settings: Settings) -> tuple[Settings, str]:
    """``settings`` with the bootstrap servers every command uses (module docstring),
    and where they came from, in words."""
    if "bootstrap_servers" in settings.model_fields_set:
        return settings, "DRIFTLINE_BOOTSTRAP_SERVERS"
    path = directory(settings)
    local = running(path)
    if local is None:
        return settings, "the default (no DRIFTLINE_BOOTSTRAP_SERVERS, no local broker runs)"
    update: dict[str, object] = {"bootstrap_servers": local}
    if is_cluster(path):
        if "replication_factor" not in settings.model_fields_set:
            update["replication_factor"] = min(CLUSTER_REPLICATION, len(nodes(path)))
        return settings.model_copy(update=update), f"the local cluster in {path}"
    return settings.model_copy(update=update), f"the local broker in {path}"


def script(name: str) -> Path:
    """Path of an infra/kafka script."""
    return home() / "infra" / "kafka" / name


def run(action: str, *args: str, capture: bool = False, name: str = "broker.sh") -> str:
    """Run ``NAME ACTION ARGS`` (broker.sh or cluster.sh); returns its stdout when
    ``capture``."""
    cmd = ["bash", str(script(name)), action, *args]
    proc = subprocess.run(cmd, text=True, stdout=subprocess.PIPE if capture else None, check=False)
    if proc.returncode not in (0, 3) or (action != "status" and proc.returncode != 0):
        raise DriftlineError(f"{name} {action} failed with exit code {proc.returncode}")
    return proc.stdout.strip() if capture and proc.stdout else ""


def up(port: str | None = None, directory: Path | None = None, security: bool = False,
       nodes: int = 1) -> str:  # fmt: skip
    """Start (or find running) the local broker; returns its bootstrap address. With
    ``security``, SASL_SSL with SCRAM users and ACLs (docs/broker.md, Security). With
    ``nodes`` of 3 or more, a cluster of that many nodes on free ports (cluster.sh),
    plaintext; returns every node's address, comma-separated."""
    if nodes > 1:
        if nodes < 3:
            raise ConfigError("a local cluster has at least 3 nodes (--nodes 3)")
        if security:
            raise ConfigError("the local cluster is plaintext only: --security needs one node")
        if port not in (None, "auto", "0"):
            raise ConfigError("a local cluster picks free ports itself: no --port with --nodes")
        args = ["--nodes", str(nodes)]
        if directory is not None:
            args += ["--dir", str(directory)]
        out = run("up", *args, capture=True, name="cluster.sh")
        return out.splitlines()[-1] if out else ""
    args = ["--security"] if security else []
    if port is not None:
        args += ["--port", port]
    if directory is not None:
        args += ["--dir", str(directory)]
    out = run("up", *args, capture=True)
    return out.splitlines()[-1] if out else ""


def down(directory: Path | None = None, purge: bool = False) -> None:
    """Stop the local broker (every node of a local cluster) cleanly."""
    args: list[str] = []
    if directory is not None:
        args += ["--dir", str(directory)]
    if purge:
        args.append("--purge")
    path = directory if directory is not None else _default_directory()
    if is_cluster(path):
        run("down", *args, name="cluster.sh")
    else:
        run("down", *args)
