"""The plan of a run: its options and its fault schedule (bench/faults/run.py carries it
out)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.faults import cluster as cluster_faults
from bench.faults.timeline import Window
from bench.faults.watch import Probe


@dataclass
class Fault:
    at: float  # progress (fraction of feature events produced) to fire at
    kind: str  # kill, burst, broker, stop, trainer; a cluster's: leader, rolling, controller, isr
    target: int = 0  # worker index; for a cluster's fault, the node id
    seconds: float = 0.0  # stop: how long
    t: float = 0.0  # fired, seconds since the first event
    progress: float = 0.0
    probe: Probe | None = None
    detail: str = ""  # a cluster's fault: why this node (bench/faults/cluster.py)
    steps: list[tuple[float, str]] = field(default_factory=list)  # (t, what) as it went
    window: Window | None = None  # the outputs from this fault to the next
    retried: Counter[str] = field(default_factory=Counter)  # transactions read again

    def name(self) -> str:
        return {"kill": f"SIGKILL w{self.target}", "burst": "SIGKILL all workers",
                "broker": "broker SIGKILL+restart", "cont": f"SIGCONT w{self.target}",
                "trainer": "SIGKILL trainer",
                "stop": f"SIGSTOP w{self.target} {self.seconds:.0f}s",
                "leader": f"SIGKILL leader{self.node}",
                "rolling": "rolling restart",
                "controller": f"SIGKILL controller{self.node}",
                "isr": f"SIGSTOP{self.node or ' a node'} out of ISR"}[self.kind]  # fmt: skip

    @property
    def node(self) -> str:
        """`` n<id>`` of a cluster fault's node once chosen (when it fires), else ''."""
        return f" n{self.target}" if self.target else ""


# --quick (CI): 100 s of events. A broker restart takes ~15 s on 2 cores (15.1-15.8 s
# seen: the restarted broker's registration waits out the killed one's 9 s session,
# with backoff), and each fault after it waits up to 8 s for the earlier ones to
# recover. With 60 s of events, the last fault fired at 98% of the events: a slower
# machine pushed it past the last feature event, where its recovery cannot be seen.
QUICK_EVENTS, QUICK_RATE = 15_000, 150.0
# --quick --brokers 3 (CI): a leader SIGKILL at 20% of the events, then a rolling restart
# (once the killed node is back and in sync), over 150 s of events. A rolling restart
# took 45 s at load 5 and 100 s at load 20 (each node's stop 1-9 s, start 6-30 s): with
# 120 s of events and the rolling restart first, the leader SIGKILL could not fire
# before 92% of the events.
QUICK_CLUSTER_EVENTS, QUICK_CLUSTER_RATE = 12_000, 80.0


@dataclass
class Options:
    events: int = 100_000
    workers: int = 2
    partitions: int = 4
    rate: float = 300.0  # feature events per second
    quick: bool = False
    faults: bool = True
    seed: int = 1
    keep: Path | None = None
    only: str | None = None  # one fault of this kind (ONLY) instead of the schedule
    max_wait: float = 240.0  # for the last results, after the last event (quick: 120)
    brokers: int = 1  # 3: a cluster (replication factor 3) and its faults
    layout: str = "all"  # "split": even workers run --role score, odd ones --role join
    cluster_dir: Path | None = None  # a cluster's directory to use (started if need be,
    # not stopped at the end); default: one of its own in the run's directory

    @property
    def wait(self) -> float:
        return min(self.max_wait, 120.0) if self.quick else self.max_wait


# Faults are scheduled between FIRST_AT and LAST_SCHEDULED of the feature events, and
# fire only while at least 1 - LAST_AT of them are still to come, so that a recovery
# can be seen on every partition. The gap leaves room for the waits on recovery (at
# most the cap, 8 s quick or 30 s full, and a broker restart). A fault still held back
# at LAST_AT is reported as not fired, and the run fails.
FIRST_AT, LAST_SCHEDULED, LAST_AT = 0.2, 0.7, 0.92
BASELINE_FROM_S = 10.0
"""The report's baseline (the outputs before the first fault) starts this many seconds
after the first event (at most half-way to the first fault)."""


ONLY = ("kill", "burst", "broker", "stop", "trainer", *cluster_faults.KINDS)
"""The kinds ``Options.only`` takes: one fault of that kind, at 30% of the events
(``broker`` on one broker; leader, rolling, controller, isr on a cluster)."""


def schedule(o: Options) -> list[Fault]:
    if not o.faults:
        return []
    rng = random.Random(o.seed)
    if o.only is not None:
        if o.only not in ONLY:
            raise ValueError(f"unknown fault kind {o.only!r}: one of {', '.join(ONLY)}")
        if (o.only in cluster_faults.KINDS) != (o.brokers > 1):
            raise ValueError(f"--only {o.only} needs " + ("--brokers 3" if o.brokers == 1
                             else "one broker (the cluster's: leader, rolling, controller, "
                             "isr)"))  # fmt: skip
        return [Fault(0.3, o.only, 0, 12.0 if o.only == "stop" else 0.0)]
    if o.brokers > 1 and o.quick:  # CI: a leader SIGKILL, then a rolling restart
        return [Fault(FIRST_AT, "leader"), Fault(0.4, "rolling")]
    kills = 1 if o.quick or o.brokers > 1 else 3
    todo = [Fault(0, "kill", w) for w in range(o.workers) for _ in range(kills)]
    todo += [Fault(0, "burst")]
    todo += [Fault(0, k) for k in cluster_faults.KINDS] if o.brokers > 1 else [Fault(0, "broker")]
    rng.shuffle(todo)
    # the stop comes first, so that its SIGCONT falls well before the last event
    stop = Fault(0, "stop", rng.randrange(o.workers), 12.0 if o.quick else rng.uniform(30, 60))
    todo.insert(0, stop)
    for k, f in enumerate(todo):
        f.at = FIRST_AT + (LAST_SCHEDULED - FIRST_AT) * k / max(1, len(todo) - 1)
    return sorted(todo + trainer_kills(o), key=lambda f: f.at)


def trainer_kills(o: Options) -> list[Fault]:
    """SIGKILLs of the trainer (its online learner checkpointed to the registry: restarted,
    it resumes from its last checkpoint; bench/faults/learning.py checks what it learnt).
    They fire at their own times, beside the other faults: the outputs do not depend on
    the trainer, so no other fault waits for its recovery, nor it for theirs (but for a
    broker restart at work). One in the quick schedule, three in the full one."""
    ats = TRAINER_AT_QUICK if o.quick else TRAINER_AT
    return [Fault(at, "trainer") for at in ats]


TRAINER_AT_QUICK = (0.3,)
TRAINER_AT = (0.25, 0.45, 0.65)
"""When the trainer is SIGKILLed (progress), quick and full schedules."""
