"""The command behind ``python bench/throughput.py`` (see that file)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

from bench.pipeline import env, join, loops
from bench.pipeline.driver import Latency, Paced
from bench.pipeline.report import log, report, summary
from bench.pipeline.worker import Drain, Watermarks, WorkerProc, drain, joined_all


@dataclass(frozen=True)
class Sizes:
    events: int
    repeats: int
    factories: tuple[str, ...]
    train_rows: int
    latency_s: float
    latency_before: bool
    worker_latency: bool
    join_events: int
    join_latency_s: float
    join_half_rate: bool
    join_settle_s: float
    """Seconds at the rate before the join's latency is counted (driver.py: settle_s)."""
    worker_repeats: int = 1
    """Turns of (a2), (a3) and (a2) before."""


FULL = Sizes(200_000, 3, env.FACTORIES, 20_000, 10.0, True, True, 20_000, 10.0, True, 2.0)
QUICK = Sizes(20_000, 1, ("logistic_regression",), 3_000, 3.0, False, False, 2_000, 0.4, False,
              0.2)  # fmt: skip


@dataclass
class FactoryResult:
    factory: str
    runs: dict[str, list[loops.Run]] = field(default_factory=dict)
    """(a1), (a1) before, (b): one Run per repetition."""
    workers: dict[str, Drain] = field(default_factory=dict)
    """(a2), (a3), (a2) before: the run of median CPU per event."""
    worker_runs: dict[str, list[Drain]] = field(default_factory=dict)
    latency: dict[str, Latency] = field(default_factory=dict)


def cpu_of(procs: list[WorkerProc]) -> Callable[[], float]:
    """CPU seconds of ``procs``, summed."""
    return lambda: sum(p.cpu_s() for p in procs)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def _tag(factory: str) -> str:
    return factory.split("_")[0][:5]


def throughput(
    bootstrap: str, work: Path, factory: str, size: Sizes, worker_src: Path | None
) -> FactoryResult:
    """(a1), (a1) before and (b) drain one backlog in turns; then (a2) drains a copy."""
    res = FactoryResult(factory)
    d = env.deploy(bootstrap, f"{_tag(factory)}-s", work, factory, size.train_rows)
    s = d.settings
    events = env.encode_all(
        "io.driftline.FeatureEvent", map(env.feature_event, env.examples(size.events, seed=5))
    )
    env.produce_all(s, s.topic("features"), events)
    raw_topic = env.create_topic(s, "bench-raw")
    joins = iter(range(1_000))
    systems: dict[str, Callable[[], loops.Run]] = {
        "a1": lambda: loops.run_scorer(s, d.champion, size.events),
        "a1 before": lambda: loops.run_scorer(s, d.champion, size.events, before=True),
        "b": lambda: loops.run_raw(s, d.champion, raw_topic, size.events),
        "b2": lambda: loops.run_raw_join(
            s, d.champion, env.create_topic(s, f"bench-rawjoin-{next(joins)}"), size.events
        ),
    }
    for i in range(size.repeats):  # in turns, so changes of load hit every system alike
        for name, fn in systems.items():
            res.runs.setdefault(name, []).append(fn())
            log(f"{factory} {name} #{i + 1}: {summary(res.runs[name][-1])}  load {load()}")
    # (a2) one worker process, (a3) the roles as separate processes (CPU summed), each
    # until its join has read every prediction
    layouts: dict[str, tuple[Path | None, tuple[str, ...]]] = {
        "a2": (None, ("all",)), "a3": (None, ("score", "join"))}  # fmt: skip
    if worker_src:
        layouts["a2 before"] = (worker_src, ("all",))
    for i in range(size.worker_repeats):
        for name, (src, roles) in layouts.items():
            tag = f"{_tag(factory)}-w{i}{name.replace(' before', 'b')[1:]}"
            w = env.deploy(bootstrap, tag, work, factory, size.train_rows)
            env.produce_all(w.settings, w.settings.topic("features"), events)
            watch = Watermarks(w.settings, w.settings.topic("predictions"))
            procs = [WorkerProc(w.settings, work, src=src, role=r) for r in roles]
            t0 = time.perf_counter()
            try:
                for p in procs:
                    p.launch()
                # measured from the first output, watched from the launch: the loops start
                # before the worker says ready (streams/worker.py), so waiting for the
                # ready line first would miss the backlog they drained meanwhile
                run = drain(watch, size.events, cpu_of(procs), t0,
                            settled=joined_all(procs, size.events))  # fmt: skip
                for p in procs:
                    p.wait_ready()
                res.worker_runs.setdefault(name, []).append(run)
            finally:
                for p in procs:
                    p.stop()
                watch.close()
            log(f"{factory} {name} #{i + 1}: {summary(run)}  load {load()}")
    for name, runs in res.worker_runs.items():
        res.workers[name] = sorted(runs, key=lambda r: r.cpu_us)[len(runs) // 2]
    return res


def latencies(
    bootstrap: str, work: Path, factory: str, size: Sizes, rate: float, res: FactoryResult
) -> None:
    """Each system on fresh topics, fed ``rate`` features/s for ``size.latency_s``."""
    tag = _tag(factory)
    warmup = 200
    n = warmup + int(rate * size.latency_s)
    recs = env.encode_all(
        "io.driftline.FeatureEvent", map(env.feature_event, env.examples(n, seed=9))
    )

    def paced(d: env.Deployment, out_topic: str) -> Latency:
        s = d.settings
        return Paced(s, s.topic("features"), out_topic, recs, warmup, rate).result()

    def in_process(name: str, start: Callable[[env.Deployment, threading.Event], str]) -> None:
        d = env.deploy(bootstrap, f"{tag}-l{len(res.latency)}", work, factory, size.train_rows)
        done = threading.Event()
        out_topic = start(d, done)
        try:
            res.latency[name] = paced(d, out_topic)
        finally:
            done.set()
        log(f"{factory} latency {name}: {summary(res.latency[name])}  load {load()}")

    def a1(before: bool) -> Callable[[env.Deployment, threading.Event], str]:
        def start(d: env.Deployment, done: threading.Event) -> str:
            loops.run_scorer_until(d.settings, d.champion, done, before)
            return d.settings.topic("predictions")

        return start

    def b(d: env.Deployment, done: threading.Event) -> str:
        out = env.create_topic(d.settings, "bench-raw")
        loops.run_raw_until(d.settings, d.champion, out, done)
        return out

    in_process("a1", a1(False))
    if size.latency_before:
        in_process("a1 before", a1(True))
    in_process("b", b)
    if size.worker_latency:
        d = env.deploy(bootstrap, f"{tag}-lw", work, factory, size.train_rows)
        proc = WorkerProc(d.settings, work, "lat").start()
        try:
            res.latency["a2"] = paced(d, d.settings.topic("predictions"))
        finally:
            proc.stop()
        log(f"{factory} latency a2: {summary(res.latency['a2'])}  load {load()}")
    if size.worker_latency and "a2" in res.workers:
        # the whole worker at half of its own capacity, and (b) at the same rate
        half = res.workers["a2"].rate / 2
        recs_w = recs[: warmup + int(half * size.latency_s)]

        def at_half(d: env.Deployment, out_topic: str) -> Latency:
            s = d.settings
            return Paced(s, s.topic("features"), out_topic, recs_w, warmup, half).result()

        d = env.deploy(bootstrap, f"{tag}-lh", work, factory, size.train_rows)
        done = threading.Event()
        out = env.create_topic(d.settings, "bench-raw")
        loops.run_raw_until(d.settings, d.champion, out, done)
        try:
            res.latency["b @ a2/2"] = at_half(d, out)
        finally:
            done.set()
        d = env.deploy(bootstrap, f"{tag}-lwh", work, factory, size.train_rows)
        proc = WorkerProc(d.settings, work, "lath").start()
        try:
            res.latency["a2 @ a2/2"] = at_half(d, d.settings.topic("predictions"))
        finally:
            proc.stop()
        for name in ("b @ a2/2", "a2 @ a2/2"):
            log(f"{factory} latency {name}: {summary(res.latency[name])}  load {load()}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Driftline throughput and latency benchmark.")
    ap.add_argument("--quick", action="store_true", help="small sizes (CI), < 90 s")
    ap.add_argument("--events", type=int, help="events per throughput run")
    ap.add_argument("--repeats", type=int, help="turns of (a1), (a1) before, (b) and (b2)")
    ap.add_argument("--worker-repeats", type=int, help="turns of (a2), (a3) and (a2) before")
    ap.add_argument("--factory", choices=env.FACTORIES, action="append", help="model factory")
    ap.add_argument("--bootstrap", help="use this broker instead of starting one")
    ap.add_argument("--no-join", action="store_true", help="skip the join measurements")
    ap.add_argument("--join-only", action="store_true", help="only the join measurements")
    ap.add_argument("--no-latency", action="store_true", help="skip the latency runs")
    ap.add_argument(
        "--join-seconds",
        type=float,
        metavar="S",
        help="seconds of the join's latency runs that are counted",
    )
    ap.add_argument(
        "--join-workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes sharing the join's partitions (default 1)",
    )
    ap.add_argument(
        "--settle-seconds",
        type=float,
        metavar="S",
        help="seconds at the rate before the join's latency is counted",
    )
    ap.add_argument(
        "--worker-src", type=Path, metavar="DIR",
        help="also run (a2) with the driftline package of DIR (e.g. `git archive` of an "
        "older commit), reported as '(a2) before'",
    )  # fmt: skip
    ap.add_argument(
        "--profile", metavar="FILE", help="only profile (a1) with pyinstrument (CPU time)"
    )
    args = ap.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C: the with-blocks stop the workers and the broker.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    size = QUICK if args.quick else FULL
    size = replace(
        size,
        events=args.events or size.events,
        repeats=args.repeats or size.repeats,
        worker_repeats=args.worker_repeats or size.worker_repeats,
        factories=tuple(args.factory or size.factories),
        join_latency_s=size.join_latency_s if args.join_seconds is None else args.join_seconds,
        join_settle_s=size.join_settle_s if args.settle_seconds is None else args.settle_seconds,
    )
    t0 = time.monotonic()
    log(f"{date.today()}, {os.cpu_count()} cores, load {load()}")
    results = []
    joined: dict[str, join.JoinResult] = {}
    with tempfile.TemporaryDirectory(prefix="driftline-bench-") as tmp, env.Broker(
        Path(tmp), args.bootstrap
    ) as broker:  # fmt: skip
        work = Path(tmp)
        log(f"broker {broker.bootstrap}")
        if args.profile:
            profile(broker.bootstrap, work, size, Path(args.profile))
            return
        for factory in () if args.join_only else size.factories:
            res = throughput(broker.bootstrap, work, factory, size, args.worker_src)
            if not args.no_latency:
                rate = summary_rate(res.runs["a1"]) / 2
                latencies(broker.bootstrap, work, factory, size, rate, res)
            results.append(res)
        if not args.no_join:
            srcs = {"": None} if args.worker_src is None else {
                " (before)": args.worker_src, "": None}  # fmt: skip
            for tag, src in srcs.items():
                joined[tag] = j = join.run(
                    broker.bootstrap, work, size.join_events, 5_000.0, size.join_latency_s,
                    size.join_half_rate, src=src, name=f"join{len(joined)}",
                    broker_pid=broker.pid, settle_s=size.join_settle_s,
                    workers=args.join_workers,
                )  # fmt: skip
                log(f"join{tag}: {summary(j.throughput)}  load {load()}")
    print()
    print(report(results, joined, size.events))
    print(f"\n{time.monotonic() - t0:.0f} s; load {load()} at the end")


def summary_rate(runs: list[loops.Run]) -> float:
    rates = sorted(r.rate for r in runs)
    return rates[len(rates) // 2]


def profile(bootstrap: str, work: Path, size: Sizes, out: Path) -> None:
    """(a1) under pyinstrument, sampling the scorer thread's CPU time (thread_time): on a
    shared machine, wall-clock samples mostly show time spent waiting for a core."""
    from pyinstrument import Profiler
    from pyinstrument.stack_sampler import get_stack_sampler

    factory = size.factories[0]
    d = env.deploy(bootstrap, "prof", work, factory, size.train_rows)
    events = env.encode_all(
        "io.driftline.FeatureEvent", map(env.feature_event, env.examples(size.events, seed=5))
    )
    env.produce_all(d.settings, d.settings.topic("features"), events)
    get_stack_sampler().timer_func = time.thread_time
    profiler = Profiler(interval=0.0002)
    profiler.start()
    run = loops.run_scorer(d.settings, d.champion, size.events)
    profiler.stop()
    get_stack_sampler().timer_func = None
    log(f"{factory} a1 (profiled): {summary(run)}")
    text = profiler.output_text(unicode=False, color=False, show_all=False, short_mode=False)
    out.write_text(text)
    print(text)
