"""The run: broker, pipeline, workload, fault schedule, recovery, verification, report."""

from __future__ import annotations

import random
import shutil
import signal
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Producer

from bench.faults.broker import Broker
from bench.faults.verify import Result, verify
from bench.faults.watch import QUIET, Probe, Watcher
from bench.faults.workers import Supervisor, Worker
from bench.faults.workload import LABEL_LAG, make_truth, setup, steps
from driftline.kafka.clients import producer_config
from driftline.settings import Settings


@dataclass
class Fault:
    at: float  # progress (fraction of feature events produced) to fire at
    kind: str  # kill, burst, broker, stop
    target: int = 0  # worker index
    seconds: float = 0.0  # stop: how long
    t: float = 0.0  # fired, seconds since the first event
    progress: float = 0.0
    probe: Probe | None = None

    def name(self) -> str:
        return {"kill": f"SIGKILL w{self.target}", "burst": "SIGKILL all workers",
                "broker": "broker SIGKILL+restart", "cont": f"SIGCONT w{self.target}",
                "stop": f"SIGSTOP w{self.target} {self.seconds:.0f}s"}[self.kind]  # fmt: skip


# --quick (CI): 100 s of events. A broker restart takes ~15 s on 2 cores (15.1-15.8 s
# seen: the restarted broker's registration waits out the killed one's 9 s session,
# with backoff), and each fault after it waits up to 8 s for the earlier ones to
# recover. With 60 s of events, the last fault fired at 98% of the events: a slower
# machine pushed it past the last feature event, where its recovery cannot be seen.
QUICK_EVENTS, QUICK_RATE = 15_000, 150.0


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
    layout: str = "all"  # "split": even workers run --role score, odd ones --role join
    max_wait: float = 240.0  # for the last results, after the last event (quick: 120)

    @property
    def wait(self) -> float:
        return min(self.max_wait, 120.0) if self.quick else self.max_wait


# Faults are scheduled between FIRST_AT and LAST_SCHEDULED of the feature events, and
# fire only while at least 1 - LAST_AT of them are still to come, so that a recovery
# can be seen on every partition. The gap leaves room for the waits on recovery (at
# most the cap, 8 s quick or 30 s full, and a broker restart). A fault still held back
# at LAST_AT is reported as not fired, and the run fails.
FIRST_AT, LAST_SCHEDULED, LAST_AT = 0.2, 0.7, 0.92


ONLY = ("kill", "burst", "broker", "stop")
"""The kinds ``Options.only`` takes: one fault of that kind, at 30% of the events."""


def schedule(o: Options) -> list[Fault]:
    if not o.faults:
        return []
    rng = random.Random(o.seed)
    if o.only is not None:
        if o.only not in ONLY:
            raise ValueError(f"unknown fault kind {o.only!r}: one of {', '.join(ONLY)}")
        return [Fault(0.3, o.only, 0, 12.0 if o.only == "stop" else 0.0)]
    kills = 1 if o.quick else 3
    todo = [Fault(0, "kill", w) for w in range(o.workers) for _ in range(kills)]
    todo += [Fault(0, "burst"), Fault(0, "broker")]
    rng.shuffle(todo)
    # the stop comes first, so that its SIGCONT falls well before the last event
    stop = Fault(0, "stop", rng.randrange(o.workers), 12.0 if o.quick else rng.uniform(30, 60))
    todo.insert(0, stop)
    for k, f in enumerate(todo):
        f.at = FIRST_AT + (LAST_SCHEDULED - FIRST_AT) * k / max(1, len(todo) - 1)
    return todo


@dataclass
class Run:
    o: Options
    faults: list[Fault] = field(default_factory=list)  # fired, in order
    unfired: list[Fault] = field(default_factory=list)
    broker_errors: list[str] = field(default_factory=list)  # a restart that failed
    notes: list[str] = field(default_factory=list)
    exits: list[str] = field(default_factory=list)
    result: Result | None = None
    complete: bool = False
    seconds: float = 0.0
    run_dir: Path = Path()

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
        return out

    @property
    def ok(self) -> bool:
        return not self.problems()


def run(o: Options) -> Run:
    r = Run(o, faults=schedule(o))
    r.run_dir = o.keep or Path(tempfile.mkdtemp(prefix="driftline-faults-"))
    r.run_dir.mkdir(parents=True, exist_ok=True)
    broker = Broker(r.run_dir / "broker")
    t_start = time.monotonic()
    sup = watcher = None
    try:
        base = Settings(bootstrap_servers=broker.up(), topic_prefix=f"f{uuid.uuid4().hex[:8]}.",
                        data_partitions=o.partitions, client_id="faults")  # fmt: skip
        s = setup(base, r.run_dir)
        truth = make_truth(o.events, o.seed)
        expected = truth.expected()

        def on_exit(w: Worker, code: int) -> None:
            r.exits.append(
                f"{time.monotonic() - t_start:7.1f}s {w.id} exited with {code}, restarted"
            )

        print(f"  broker up and models bootstrapped in {time.monotonic() - t_start:.0f} s")
        sup = Supervisor(s, r.run_dir, o.workers, on_exit, o.layout)
        sup.start()
        roles = ", ".join(f"{w.id} {w.role}" for w in sup.workers)
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
    finally:
        if watcher is not None:
            watcher.stop()
        if sup is not None:
            sup.stop()
        # a failed run keeps its broker's data, to read what went wrong
        broker.down(purge=o.keep is None and r.ok)
    if r.ok and o.keep is None:
        shutil.rmtree(r.run_dir, ignore_errors=True)
    return r


def _produce(r: Run, s: Settings, truth, sup: Supervisor, broker: Broker, watcher: Watcher,
             t_start: float) -> None:  # fmt: skip
    """Produce the workload at ``rate`` events/s and fire the faults on the way; a fault
    waits (while production goes on) until the earlier ones have recovered, for ``cap``
    s at most, and until a broker restart is done."""
    o = r.o
    failed: list[str] = []
    conf = producer_config(s, "faults-load", log_level=QUIET)
    conf["on_delivery"] = lambda e, _m: e and failed.append(str(e))
    p = Producer(conf)
    todo, fired = list(r.faults), []
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
        if cont is not None and time.monotonic() >= cont[0]:
            fire(cont[1], n)
        if todo and n >= todo[0].at * o.events and n < LAST_AT * o.events:
            if waiting_since is None:
                waiting_since = time.monotonic()
            recovered = all(f.probe is not None and f.probe.recovered_s is not None
                            for f in fired)  # fmt: skip
            restarting = bg is not None and bg.is_alive()
            if (
                cont is None
                and not restarting
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
    r.faults, r.unfired = fired, todo
    if r.broker_errors:
        raise RuntimeError(f"the broker did not come back: {'; '.join(r.broker_errors)}")
    if p.flush(300) != 0 or failed:
        raise RuntimeError(f"the workload was not delivered: {failed[:3]}")


def _fire(r: Run, f: Fault, sup: Supervisor, broker: Broker, watcher: Watcher, n: int,
          t_start: float) -> threading.Thread | None:  # fmt: skip
    """Fire fault ``f`` after ``n`` steps were produced; returns a thread still at work."""
    now = time.monotonic()
    f.t, f.progress = now - t_start, min(n, r.o.events) / r.o.events
    f.probe = watcher.probe(now, min(n, r.o.events), n - 1 - LABEL_LAG)
    print(f"  {f.t:7.1f}s {f.progress:6.1%}  {f.name()}", flush=True)
    if f.kind == "kill":
        sup.kill_and_restart(sup.workers[f.target])
    elif f.kind == "burst":
        sup.kill_all_and_restart()
    elif f.kind == "stop":
        sup.workers[f.target].signal(signal.SIGSTOP)
    elif f.kind == "cont":
        sup.workers[f.target].signal(signal.SIGCONT)
    elif f.kind == "broker":
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
