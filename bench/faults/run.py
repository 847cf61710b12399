"""The run: broker (or cluster), pipeline, workload, fault schedule (bench/faults/plan.py),
recovery, verification, report."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Producer

from bench.faults import cluster as cluster_faults
from bench.faults.broker import Broker, Cluster
from bench.faults.learning import Learning
from bench.faults.learning import check as check_learning
from bench.faults.plan import (
    BASELINE_FROM_S,
    FIRST_AT,
    LAST_AT,
    LAST_SCHEDULED,
    ONLY,
    QUICK_CLUSTER_EVENTS,
    QUICK_CLUSTER_RATE,
    QUICK_EVENTS,
    QUICK_RATE,
    Fault,
    Options,
    schedule,
)
from bench.faults.retries import Retries
from bench.faults.timeline import Window, windows
from bench.faults.verify import Result, verify
from bench.faults.watch import QUIET, Watcher
from bench.faults.workers import Supervisor, Worker
from bench.faults.workload import LABEL_LAG, Truth, make_truth, setup, steps
from driftline.kafka.clients import admin_config, producer_config
from driftline.settings import Settings

__all__ = [
    "FIRST_AT", "LAST_AT", "LAST_SCHEDULED", "ONLY", "QUICK_CLUSTER_EVENTS",
    "QUICK_CLUSTER_RATE", "QUICK_EVENTS", "QUICK_RATE", "Fault", "Options", "Run", "run",
    "schedule",
]  # fmt: skip


@dataclass
class Run:
    o: Options
    faults: list[Fault] = field(default_factory=list)  # fired, in order
    unfired: list[Fault] = field(default_factory=list)
    broker_errors: list[str] = field(default_factory=list)  # a restart that failed
    notes: list[str] = field(default_factory=list)
    exits: list[str] = field(default_factory=list)
    result: Result | None = None
    learning: Learning | None = None  # the online learner's checkpoints against the outcomes
    complete: bool = False
    seconds: float = 0.0
    run_dir: Path = Path()
    produced: list[float] = field(default_factory=list)  # step i produced at (s since start)
    baseline: Window | None = None  # the outputs before the first fault
    load: list[str] = field(default_factory=list)  # load averages: start, end

    def problems(self) -> list[str]:
        """Why the run failed, one line per reason; empty when it passed."""
        out = [f"{f.name()} did not fire: the earlier faults had not recovered by "
               f"{LAST_AT:.0%} of the events" for f in self.unfired]  # fmt: skip
        out += [f"{f.name()} at {f.t:.1f} s did not recover" for f in self.faults
                if f.probe is None or f.probe.recovered_s is None]  # fmt: skip
        if not self.complete:
            out.append(f"not every expected result arrived within {self.o.wait:.0f} s "
                       "of the last event")  # fmt: skip
        if self.result is None:
            out.append("no verification: the run stopped before it")
            return out
        for row in self.result.rows:
            if row.bad:
                keys = f" (lost: {' '.join(row.lost_keys)})" if row.lost_keys else ""
                out.append(f"{row.kind}: {row.got} of {row.expected}, {row.lost} lost, "
                           f"{row.duplicated} duplicated, {row.unexpected} unexpected"
                           f"{keys}")  # fmt: skip
        if self.result.order_violations:
            out.append(f"{len(self.result.order_violations)} order violations")
        if self.learning is None:
            out.append("no check of the online learner: the run stopped before it")
        else:
            out += self.learning.problems()
        return out

    @property
    def ok(self) -> bool:
        return not self.problems()


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run(o: Options) -> Run:
    r = Run(o, faults=schedule(o))
    r.run_dir = o.keep or Path(tempfile.mkdtemp(prefix="driftline-faults-"))
    r.run_dir.mkdir(parents=True, exist_ok=True)
    r.load.append(_load())
    broker: Broker | Cluster = (
        Broker(r.run_dir / "broker") if o.brokers == 1
        else Cluster(o.cluster_dir or r.run_dir / "cluster", o.brokers)
    )  # fmt: skip
    t_start = time.monotonic()
    sup = watcher = retries = None
    try:
        base = Settings(bootstrap_servers=broker.up(), topic_prefix=f"f{uuid.uuid4().hex[:8]}.",
                        data_partitions=o.partitions, client_id="faults",
                        replication_factor=min(3, o.brokers))  # fmt: skip
        s = setup(base, r.run_dir)
        truth = make_truth(o.events, o.seed)
        expected = truth.expected()

        def on_exit(w: Worker, code: int) -> None:
            r.exits.append(
                f"{time.monotonic() - t_start:7.1f}s {w.id} exited with {code}, restarted"
            )

        what = "broker" if o.brokers == 1 else f"{o.brokers}-node cluster"
        print(f"  {what} up and models bootstrapped in {time.monotonic() - t_start:.0f} s")
        sup = Supervisor(s, r.run_dir, o.workers, on_exit, o.layout)
        sup.start()
        roles = ", ".join(f"{w.id} {w.role}" for w in sup.workers)
        retries = Retries(sup)
        retries.start()
        print(
            f"  {o.workers} workers ({roles}) ready after {time.monotonic() - t_start:.0f} s; "
            f"logs in {r.run_dir}",
            flush=True,
        )
        watcher = Watcher(s)
        watcher.start()
        t_start = time.monotonic()
        _produce(r, s, truth, sup, broker, watcher, t_start)
        print(
            f"  {time.monotonic() - t_start:7.1f}s all events produced; waiting for the results",
            flush=True,
        )
        deadline = time.monotonic() + o.wait
        while not (complete := watcher.complete(expected)) and time.monotonic() < deadline:
            time.sleep(1)
        r.complete = complete
        # then let late duplicates show: until 3 s pass without a record (60 s at most)
        settle, t_max = time.monotonic() + (5 if o.quick else 15), time.monotonic() + 60
        while time.monotonic() < t_max and (
            time.monotonic() < settle or time.monotonic() - watcher.last_record < 3
        ):
            time.sleep(0.5)
        r.seconds = time.monotonic() - t_start
        print(f"  {r.seconds:7.1f}s verifying", flush=True)
        r.result = verify(s, expected)
        r.learning = check_learning(s)
    finally:
        if watcher is not None:
            watcher.stop()
        if retries is not None:
            retries.stop()
        if sup is not None:
            sup.stop()
        if watcher is not None and retries is not None:
            _windows(r, watcher, retries, t_start)
        r.load.append(_load())
        # a failed run keeps its broker's data, to read what went wrong; a cluster the
        # caller gave is the caller's to stop
        if o.cluster_dir is None:
            broker.down(purge=o.keep is None and r.ok)
    if r.ok and o.keep is None:
        shutil.rmtree(r.run_dir, ignore_errors=True)
    return r


def _windows(r: Run, watcher: Watcher, retries: Retries, t_start: float) -> None:
    """Latency, stops and retried transactions from each fault to the next."""
    if not r.produced:
        return
    arrivals = [(t - t_start, topic, part, i) for t, topic, part, i in watcher.arrivals]
    # the baseline leaves out the start (the first batches, a fresh coordinator's load)
    first = r.faults[0].t if r.faults else r.produced[-1]
    starts = [min(BASELINE_FROM_S, first / 2), *(f.t for f in r.faults)]
    ws = windows(arrivals, r.produced, LABEL_LAG, starts, r.produced[-1])
    r.baseline = ws[0]
    # retried transactions: up to the next fault, the last fault's up to the verification
    # (its retries can come after the last event, while the cluster still recovers)
    ends = [*starts[2:], r.seconds]
    for f, w, end in zip(r.faults, ws[1:], ends, strict=True):
        f.window = w
        f.retried = retries.between(t_start + w.t0, t_start + end)


def _produce(r: Run, s: Settings, truth: Truth, sup: Supervisor, broker: Broker | Cluster,
             watcher: Watcher, t_start: float) -> None:  # fmt: skip
    """Produce the workload at ``rate`` events/s and fire the faults on the way; a fault
    waits (while production goes on) until the earlier ones have recovered, for ``cap``
    s at most, and until a broker restart is done."""
    o = r.o
    failed: list[str] = []
    conf = producer_config(s, "faults-load", log_level=QUIET)

    def delivered(err: object, _msg: object) -> None:
        if err:
            failed.append(str(err))

    conf["on_delivery"] = delivered
    p = Producer(conf)
    # the trainer's kills fire at their own times, apart from the chain of the others
    # (each of which waits for the earlier ones to recover): see plan.trainer_kills
    side = [f for f in r.faults if f.kind == "trainer"]
    todo, fired = [f for f in r.faults if f.kind != "trainer"], []
    cont: tuple[float, Fault] | None = None  # when to SIGCONT, and the Fault to record
    bg: threading.Thread | None = None  # a broker restart at work

    def fire(f: Fault, n: int) -> None:
        nonlocal bg, cont
        bg = _fire(r, f, sup, broker, watcher, n, t_start) or bg
        fired.append(f)
        if f.kind == "stop":
            cont = (time.monotonic() + f.seconds, Fault(f.at, "cont", f.target))
        elif f.kind == "cont":
            cont = None

    cap = 8 if o.quick else 30
    waiting_since: float | None = None
    for n, batch in enumerate(steps(truth, o.seed)):
        r.produced.append(time.monotonic() - t_start)
        if cont is not None and time.monotonic() >= cont[0]:
            fire(cont[1], n)
        restarting = bg is not None and bg.is_alive()
        if side and n >= side[0].at * o.events and n < LAST_AT * o.events and not restarting:
            fire(side.pop(0), n)
        if todo and n >= todo[0].at * o.events and n < LAST_AT * o.events:
            if waiting_since is None:
                waiting_since = time.monotonic()
            recovered = all(f.probe is not None and f.probe.recovered_s is not None
                            for f in fired if f.kind != "trainer")  # fmt: skip
            if (
                cont is None
                and not restarting
                and not r.broker_errors  # a failed fault ends the schedule (reported)
                and (recovered or time.monotonic() - waiting_since > cap)
            ):
                fire(todo.pop(0), n)
                waiting_since = None
        for topic, key, value in batch:
            while True:
                try:
                    p.produce(s.topic(topic), value, key)
                    break
                except BufferError:
                    p.poll(0.1)
        if n % 20 == 0:
            p.poll(0)
            ahead = t_start + min(n, o.events) / o.rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    if cont is not None:
        time.sleep(max(0.0, cont[0] - time.monotonic()))
        fire(cont[1], n)
    if bg is not None:
        bg.join()
    r.faults, r.unfired = fired, sorted(todo + side, key=lambda f: f.at)
    if r.broker_errors:
        raise RuntimeError(f"the broker did not come back: {'; '.join(r.broker_errors)}")
    if p.flush(300) != 0 or failed:
        raise RuntimeError(f"the workload was not delivered: {failed[:3]}")


def _fire(r: Run, f: Fault, sup: Supervisor, broker: Broker | Cluster, watcher: Watcher,
          n: int, t_start: float) -> threading.Thread | None:  # fmt: skip
    """Fire fault ``f`` after ``n`` steps were produced; returns a thread still at work."""
    if f.kind in cluster_faults.KINDS:
        assert isinstance(broker, Cluster)
        return _fire_cluster(r, f, broker, watcher, n, t_start)
    now = time.monotonic()
    f.t, f.progress = now - t_start, min(n, r.o.events) / r.o.events
    if f.kind == "trainer":
        f.probe = watcher.probe_trainer(now, int(time.time() * 1000))
    else:
        f.probe = watcher.probe(now, min(n, r.o.events), n - 1 - LABEL_LAG)
    print(f"  {f.t:7.1f}s {f.progress:6.1%}  {f.name()}", flush=True)
    assert isinstance(broker, Broker) or f.kind != "broker"
    if f.kind == "trainer":
        sup.kill_and_restart(sup.trainer)
    elif f.kind == "kill":
        sup.kill_and_restart(sup.workers[f.target])
    elif f.kind == "burst":
        sup.kill_all_and_restart()
    elif f.kind == "stop":
        sup.workers[f.target].signal(signal.SIGSTOP)
    elif f.kind == "cont":
        sup.workers[f.target].signal(signal.SIGCONT)
    elif f.kind == "broker" and isinstance(broker, Broker):
        broker.kill()
        t = threading.Thread(target=_restart, args=(r, broker), daemon=True)
        t.start()
        return t
    return None


def _restart(r: Run, broker: Broker) -> None:
    """Bring the killed broker back on its port and data, in up to three tries (a
    client's reconnect can hold the port for a moment). This runs in a thread, where an
    exception would vanish: a failed try goes into the report's notes, and three
    failed tries into ``broker_errors``, which stops the run."""
    errors = []
    for attempt in range(1, 4):
        try:
            broker.up()
        except Exception as e:  # recorded; the producing thread raises it
            errors.append(f"try {attempt}: {e}")
            time.sleep(2)
        else:
            r.notes += [f"broker restart {e}" for e in errors]
            return
    r.broker_errors = errors


def _fire_cluster(r: Run, f: Fault, cluster: Cluster, watcher: Watcher, n: int,
                  t_start: float) -> threading.Thread:  # fmt: skip
    """Fire a cluster's fault: pick its node now (the leader of the most partitions, the
    active controller, ...), then carry it out on a thread (bench/faults/cluster.py)."""
    s = watcher.s

    def step(what: str) -> None:
        t = time.monotonic() - t_start
        f.steps.append((t, what))
        print(f"  {t:7.1f}s          {f.name()}: {what}", flush=True)

    ops = cluster_faults.Ops(cluster, admin_config(s), s.topic_prefix.rstrip("."), step)
    f.target, f.detail = ops.target(f.kind)
    now = time.monotonic()
    f.t, f.progress = now - t_start, min(n, r.o.events) / r.o.events
    f.probe = watcher.probe(now, min(n, r.o.events), n - 1 - LABEL_LAG)
    print(f"  {f.t:7.1f}s {f.progress:6.1%}  {f.name()} ({f.detail})", flush=True)

    def work() -> None:
        try:
            ops.run(f.kind, f.target, f.detail)
        except Exception as e:  # recorded; the producing thread raises it
            r.broker_errors.append(f"{f.name()}: {e}")

    t = threading.Thread(target=work, daemon=True)
    t.start()
    return t
