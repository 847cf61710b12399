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
from bench.faults.watch import Probe, Watcher
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
    max_wait: float = 240.0  # for the last results, after the last event (quick: 120)


def schedule(o: Options) -> list[Fault]:
    if not o.faults:
        return []
    rng = random.Random(o.seed)
    kills = 1 if o.quick else 3
    todo = [Fault(0, "kill", w) for w in range(o.workers) for _ in range(kills)]
    todo += [Fault(0, "burst"), Fault(0, "broker")]
    rng.shuffle(todo)
    # the stop comes first, so that its SIGCONT falls well before the last event
    stop = Fault(0, "stop", rng.randrange(o.workers), 12.0 if o.quick else rng.uniform(30, 60))
    todo.insert(0, stop)
    hi = 0.85
    for k, f in enumerate(todo):
        f.at = 0.2 + (hi - 0.2) * k / max(1, len(todo) - 1)
    return todo


@dataclass
class Run:
    o: Options
    faults: list[Fault] = field(default_factory=list)
    exits: list[str] = field(default_factory=list)
    result: Result | None = None
    complete: bool = False
    seconds: float = 0.0
    run_dir: Path = Path()

    @property
    def ok(self) -> bool:
        recovered = all(
            f.probe is not None and f.probe.recovered_s is not None for f in self.faults
        )
        return self.result is not None and self.result.ok and self.complete and recovered


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
        sup = Supervisor(s, r.run_dir, o.workers, on_exit)
        sup.start()
        print(
            f"  {o.workers} workers ready after {time.monotonic() - t_start:.0f} s; "
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
        deadline = time.monotonic() + (min(o.max_wait, 120) if o.quick else o.max_wait)
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
        broker.down(purge=o.keep is None)
    if r.ok and o.keep is None:
        shutil.rmtree(r.run_dir, ignore_errors=True)
    return r


def _produce(r: Run, s: Settings, truth, sup: Supervisor, broker: Broker, watcher: Watcher,
             t_start: float) -> None:  # fmt: skip
    """Produce the workload at ``rate`` events/s and fire the faults on the way; a fault
    waits (while production goes on) until the earlier ones have recovered."""
    o = r.o
    failed: list[str] = []
    conf = producer_config(s, "faults-load")
    conf["on_delivery"] = lambda e, _m: e and failed.append(str(e))
    p = Producer(conf)
    todo, fired = list(r.faults), []
    cont: tuple[float, Fault] | None = None  # when to SIGCONT, and the Fault to record
    bg: threading.Thread | None = None

    def fire(f: Fault, n: int) -> None:
        nonlocal bg, cont
        if bg is not None:
            bg.join()
        bg = _fire(r, f, sup, broker, watcher, n, t_start)
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
        if todo and n >= todo[0].at * o.events:
            # the next fault waits (production goes on) until the earlier ones have
            # recovered and a SIGSTOPped worker had its SIGCONT, for ``cap`` s at most
            if waiting_since is None:
                waiting_since = time.monotonic()
            recovered = all(f.probe is not None and f.probe.recovered_s is not None
                            for f in fired)  # fmt: skip
            if cont is None and (recovered or time.monotonic() - waiting_since > cap):
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
    r.faults = fired
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
        t = threading.Thread(target=broker.up, daemon=True)
        t.start()
        return t
    return None
