"""The faults of a cluster of three nodes (``--brokers 3``), each run on a thread of its
own while the workload goes on:

- ``leader``: SIGKILL the node that leads the most of the run's partitions, then start it
  again on its data (a broker that crashed and was brought back by its supervisor);
- ``rolling``: a rolling restart, one node after the other: SIGTERM (a controlled
  shutdown, which moves the node's leaderships away first), start it again, and wait
  until every partition has its full ISR before the next node; the active controller
  goes last, as an operator would do it (one controller election instead of two);
- ``controller``: SIGKILL the active controller (the KRaft quorum's leader; a combined
  node, so a broker dies with it), then start it again;
- ``isr``: SIGSTOP a node that is not the active controller until it has dropped out
  of the ISR of every partition it holds (the controller fences a broker whose
  heartbeats stop for ``broker.session.timeout.ms``, 4.5 s on the local cluster, and
  shrinks the ISRs), then
  SIGCONT it and wait until it is back in every ISR.

Each fault ends only when every partition is fully replicated again, so that the next
one starts from a healthy cluster; the run's next fault waits for that.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from bench.faults.broker import Cluster

KINDS = ("leader", "rolling", "controller", "isr")
IN_SYNC_TIMEOUT_S = 120.0
OUT_OF_ISR_TIMEOUT_S = 60.0
FAILOVER_TIMEOUT_S = 60.0
POLL_S = 0.25


@dataclass(frozen=True)
class Part:
    topic: str
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


def partitions(admin: AdminClient, tries: int = 6) -> list[Part]:
    """Every partition of the cluster (internal topics too), as metadata shows it. A
    metadata request to a paused or dying node times out: it is asked again (librdkafka
    then tends to ask another node), ``tries`` times in all."""
    for attempt in range(tries):
        try:
            md = admin.list_topics(timeout=5)
            break
        except KafkaException:
            if attempt == tries - 1:
                raise
            time.sleep(0.5)
    return [
        Part(t.topic or "", p.id, p.leader, tuple(p.replicas), tuple(p.isrs))
        for t in md.topics.values() if t.error is None
        for p in t.partitions.values()
    ]  # fmt: skip


def leader_counts(parts: list[Part], prefix: str) -> Counter[int]:
    """Partitions of the run's topics (names starting with ``prefix``: Driftline's topics,
    the join's changelog and Faust's) led by each node."""
    return Counter(p.leader for p in parts if p.topic.startswith(prefix) and p.leader >= 0)


def under_replicated(parts: list[Part]) -> list[Part]:
    return [p for p in parts if len(p.isr) < len(p.replicas)]


def out_of_isr(parts: list[Part], node: int) -> bool:
    """Has ``node`` dropped out of the ISR of every partition it is a replica of?"""
    return all(node not in p.isr for p in parts if node in p.replicas)


class Ops:
    """Fires the cluster's faults and follows them; ``step(text)`` records a step of the
    fault in progress (the run prints it and keeps it for the report)."""

    def __init__(self, cluster: Cluster, admin_conf: dict[str, Any], prefix: str,
                 step: Callable[[str], None]) -> None:  # fmt: skip
        self.cluster = cluster
        self.admin_conf = admin_conf
        self.admin = AdminClient(admin_conf)
        self.prefix = prefix
        self.step = step

    def target(self, kind: str) -> tuple[int, str]:
        """The node a fault of ``kind`` hits, and why, decided when it fires."""
        parts = partitions(self.admin)
        leads = leader_counts(parts, self.prefix)
        controller = self.cluster.controller()
        if kind == "leader":
            node, n = max(sorted(leads.items()), key=lambda kv: kv[1])
            also = ", the active controller too" if node == controller else ""
            return node, f"leads {n} of {sum(leads.values())} partitions{also}"
        if kind == "controller":
            if controller is None:
                raise RuntimeError("no active controller found")
            return controller, f"active controller, leads {leads.get(controller, 0)}"
        if kind == "isr":
            others = [k for k in sorted(self.cluster.nodes) if k != controller]
            node = max(others, key=lambda k: leads.get(k, 0))
            return node, f"not the controller, leads {leads.get(node, 0)}"
        if kind == "rolling":
            order = [k for k in sorted(self.cluster.nodes) if k != controller]
            order += [controller] if controller is not None else []
            return order[0], "order " + ",".join(f"n{k}" for k in order)
        raise ValueError(f"unknown cluster fault {kind!r}")

    def run(self, kind: str, node: int, detail: str) -> None:
        """Carry out the fault of ``kind`` on ``node`` (the rolling restart: in the order
        ``detail`` names), then wait until the cluster is fully replicated again."""
        if kind in ("leader", "controller"):
            self.cluster.kill(node)
            self.step(f"n{node} SIGKILLed")
            elect = kind == "controller" or "active controller" in detail
            follow = threading.Thread(target=self._failover, args=(elect, node, time.monotonic()),
                                      daemon=True)  # fmt: skip
            follow.start()
            self._start(node)
            follow.join(FAILOVER_TIMEOUT_S)
        elif kind == "rolling":
            order = [int(x) for x in detail.removeprefix("order ").replace("n", "").split(",")]
            for k in order:
                self.cluster.stop(k)
                self.step(f"n{k} stopped (SIGTERM)")
                self._start(k)
                self._in_sync()
            return
        elif kind == "isr":
            self.cluster.signal(node, signal.SIGSTOP)
            try:
                self._out_of_isr(node)
            finally:  # whatever happened, the node runs on
                self.cluster.signal(node, signal.SIGCONT)
                self.step(f"n{node} resumed (SIGCONT)")
        self._in_sync()

    def _failover(self, elect: bool, node: int, t0: float) -> None:
        """Record the phases of a SIGKILLed node's failover as the other nodes' metadata
        shows them (polled every :data:`POLL_S`, so each is up to that late): a new
        active controller (``elect``: the node was the active controller), then no partition
        led by ``node`` any more (the controller fenced it, ``broker.session.timeout.ms``
        after its last heartbeat, or after a new controller's activation, and moved its
        leaderships). What follows until outputs flow again is the clients' part."""
        others = ",".join(n.address for k, n in sorted(self.cluster.nodes.items()) if k != node)
        admin = AdminClient({**self.admin_conf, "bootstrap.servers": others})
        elected = not elect
        while time.monotonic() - t0 <= FAILOVER_TIMEOUT_S:
            # each time is taken when the answer came (a request can wait for an election)
            if not elected and (c := self.cluster.controller()) not in (None, node):
                self.step(f"n{c} active controller after {time.monotonic() - t0:.1f} s")
                elected = True
            try:
                parts = partitions(admin, tries=1)
            except KafkaException:
                parts = []
            if parts and all(p.leader != node for p in parts):
                self.step(f"n{node} leads no partition after {time.monotonic() - t0:.1f} s "
                          "(fenced)")  # fmt: skip
                return
            time.sleep(POLL_S)
        self.step(f"n{node} still leads partitions after {FAILOVER_TIMEOUT_S:.0f} s")

    def _out_of_isr(self, node: int) -> None:
        """Wait until paused ``node`` is out of every ISR, up to
        :data:`OUT_OF_ISR_TIMEOUT_S`. Metadata is asked of the other nodes only: a
        request sent to the paused one is never answered (its connection stays open),
        which in a full run at load 26 made every try of :func:`partitions` time out
        and, before this, left the node paused for the rest of the run."""
        others = ",".join(n.address for k, n in sorted(self.cluster.nodes.items()) if k != node)
        admin = AdminClient({**self.admin_conf, "bootstrap.servers": others})
        t0 = time.monotonic()
        while time.monotonic() - t0 <= OUT_OF_ISR_TIMEOUT_S:
            try:
                if out_of_isr(partitions(admin, tries=1), node):
                    self.step(f"n{node} out of every ISR after {time.monotonic() - t0:.1f} s")
                    return
            except KafkaException as e:
                self.step(f"metadata not answered ({e.args[0].str()}); asking again")
            time.sleep(0.5)
        self.step(f"n{node} still in an ISR after {OUT_OF_ISR_TIMEOUT_S:.0f} s")

    def _start(self, node: int) -> None:
        """Start ``node`` again, in up to three tries (a port can be held for a moment)."""
        for attempt in range(1, 4):
            try:
                self.cluster.start(node)
            except Exception as e:
                self.step(f"n{node} restart try {attempt} failed: {e}")
                time.sleep(2)
            else:
                self.step(f"n{node} serves again")
                return
        raise RuntimeError(f"node {node} did not come back")

    def _in_sync(self) -> None:
        t0 = time.monotonic()
        while under := under_replicated(partitions(self.admin)):
            if time.monotonic() - t0 > IN_SYNC_TIMEOUT_S:
                raise RuntimeError(f"{len(under)} partitions under-replicated after "
                                   f"{IN_SYNC_TIMEOUT_S:.0f} s, e.g. {under[0]}")  # fmt: skip
            time.sleep(0.5)
        self.step(f"every partition in sync ({time.monotonic() - t0:.1f} s)")
