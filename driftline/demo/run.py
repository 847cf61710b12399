"""Orchestrates ``driftline demo``: broker, topics, a bootstrapped champion, a worker and
a trainer as child processes, a drifting stream replayed with delayed labels, a live
view, and the report."""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from driftline import broker
from driftline.core.lifecycle.training import bootstrap
from driftline.core.model.estimators import load_version
from driftline.core.watch import models_file
from driftline.core.wire.codec import default_codec
from driftline.core.wire.headers import build as build_headers
from driftline.core.wire.headers import for_confluent
from driftline.demo import drift_panel, report
from driftline.demo.synthetic import Row, change_points, drifting_stream, kind
from driftline.demo.watch import Watcher, wait_for
from driftline.kafka import admin
from driftline.kafka.clients import producer_config
from driftline.procs import Process, worker
from driftline.settings import Settings

MODEL = "demo"
MAX_LAG = 1_500
"""Most events the replay runs ahead of the outcomes (beyond the label delay), and the
outcomes ahead of the online learner's newest checkpoint."""
LEARNER_STALL_S = 60.0
"""The replay stops waiting for an online learner whose checkpoints made no progress for
this long (a trainer gone: the demo goes on)."""
MODELS_TOML = """
[models.demo]
task = "classification"
factory = "{factory}"
join_ttl_ms = 600000

[models.demo.params]
{params}

[models.demo.gate]
min_segment_samples = 200

[models.demo.retrain]
min_rows = {min_rows}
max_rows = {max_rows}
last_n = {max_rows}
cooldown_ms = 5000

# an online challenger learns every outcome as it arrives (the trainer's live loop) and
# is promoted, or the champion it replaced restored, on live paired evidence
[models.demo.online]
checkpoint_every = 500
"""


@dataclass(frozen=True)
class Options:
    stream: str = "agrawal"
    events: int = 24_000
    drift_every: int = 6_000
    warmup: int = 2_000
    label_delay: int = 500
    rate: float = 1_000.0
    seed: int = 42
    min_rows: int = 500
    """Post-change rows of the first retrain after a drift; later ones double it."""
    max_rows: int = 8_000
    out: Path = Path("reports/demo")
    broker_dir: Path = Path(".cache/demo-broker")
    nodes: int = 1  # 3: a cluster of three nodes, topics at replication factor 3


def models_toml(stream: str, min_rows: int, max_rows: int) -> str:
    """The models file of the demo for stream kind ``stream``, with the factory and
    parameters the kind names (:data:`driftline.demo.synthetic.KINDS`); the closed-loop
    benchmark trains with the same.

    A retrained model learns from a window of ``min_rows``-``max_rows`` rows, not from an
    endless stream: the kinds' trees split at 99% confidence (river's default delta of
    1e-7 needs ~10x the rows to split) and every model learns its window 5 times
    (bench/loop, Agrawal delay 500: 0.867 -> 0.922; a tree on 500 rows of a new concept:
    0.79 -> 0.89)."""
    k = kind(stream)
    return MODELS_TOML.format(
        factory=k.factory, params=k.params, min_rows=min_rows, max_rows=max(min_rows, max_rows)
    )


def event_id(i: int) -> str:
    return f"demo-{i:07d}"


def say(line: str) -> None:
    print(line, flush=True)


def settings_for(bootstrap_servers: str, prefix: str, out: Path, nodes: int = 1) -> Settings:
    """The settings of a demo (or loop bench) system whose models file, logs, artifacts,
    worker data and SQL view live in ``out``. The demo's time runs fast (1,000 events/s,
    a concept change every 6 s): the monitor judges twice a second, so an incident's 3
    healthy judgements take ~1,500 outcomes."""
    return Settings(
        bootstrap_servers=bootstrap_servers, topic_prefix=prefix, data_partitions=3,
        models_file=out / "models.toml", monitor_interval_s=0.5,
        sql_url=f"sqlite:///{out}/driftline.db", metrics_port=0,
        data_dir=out / "worker-data", artifact_dir=out / "artifacts",
        replication_factor=min(nodes, broker.CLUSTER_REPLICATION),
    )  # fmt: skip


@contextlib.contextmanager
def closed_loop(
    settings: Settings, warm: list[Row], out: Path, echo: Callable[[str], None] = say
) -> Iterator[tuple[Any, Watcher]]:
    """Topics applied, a first champion bootstrapped on ``warm`` and published, a worker
    and a trainer running as child processes (logs in ``out``) and a watcher reading
    their outputs: yields (the champion's ServedModel, the watcher); stops them all."""
    procs: list[Process] = []
    try:
        admin.apply(settings)
        echo(f"topics applied under prefix {settings.topic_prefix}")
        champion = _bootstrap(settings, warm, echo)
        procs.append(worker(settings, out).start())
        procs.append(Process(settings, ["trainer", "--verbose"], out / "trainer.log",
                             "trainer started").start())  # fmt: skip
        with _watching(settings) as watcher:
            yield champion, watcher
    finally:
        for p in reversed(procs):
            p.stop()


def run(opts: Options, echo: Callable[[str], None] = say) -> Path:
    """Run the demo; returns the report's path."""
    out = opts.out
    out.mkdir(parents=True, exist_ok=True)
    what = "broker" if opts.nodes == 1 else f"cluster of {opts.nodes} nodes"
    echo(f"starting a local Kafka {what} in {opts.broker_dir} (fresh) ...")
    broker.down(opts.broker_dir, purge=True)
    bootstrap_servers = broker.up("auto", opts.broker_dir, nodes=opts.nodes)
    echo(f"broker {bootstrap_servers}")
    settings = settings_for(bootstrap_servers, "demo.", out, nodes=opts.nodes)
    (out / "models.toml").write_text(models_toml(opts.stream, opts.min_rows, opts.max_rows))
    try:
        rows = list(drifting_stream(opts.stream, opts.events, opts.drift_every, opts.seed))
        with closed_loop(settings, rows[: opts.warmup], out, echo) as (champion, watcher):
            echo("worker and trainer running; replaying the stream (Ctrl-C stops cleanly)")
            t0 = time.monotonic()
            replay(settings, rows[opts.warmup :], opts.label_delay, opts.rate, watcher, echo)
            expected = len(rows) - opts.warmup
            wait_for(lambda: len(watcher.seen.outcomes) >= expected, timeout=120)
            _drain(watcher, echo)
            elapsed = time.monotonic() - t0
        path = _report(opts, rows, champion, watcher, elapsed)
        echo(f"\nreport: {path.resolve()}")
        return path
    finally:
        broker.down(opts.broker_dir)


def _bootstrap(settings: Settings, rows: list[Row], echo: Callable[[str], None]) -> Any:
    config = models_file.load(settings.models_file)[MODEL]  # checked as the worker will
    key = settings.signing_key.get_secret_value().encode()
    _, records = bootstrap(
        ({"features": r.features, "label": r.label, "event_time_ms": r.index,
          "segment": _segment(r)} for r in rows),
        config, key=key, by="demo", reason=f"first {len(rows)} events", now_ms=_now(),
    )  # fmt: skip
    codec = default_codec()
    p = Producer(producer_config(settings, "demo"))
    for rec in records:
        p.produce(settings.topic("registry"), codec.encode("io.driftline.ModelVersion", rec),
                  f"{rec['model']}/{rec['version']}".encode())  # fmt: skip
    p.flush(30)
    echo(f"bootstrapped champion {records[-1]['version']} on {len(rows)} events")
    return load_version(records[-1], key)


SEGMENTS = {"agrawal": ("elevel",), "sea": ()}
"""The demo's segment attributes per stream (features that are also segments)."""


def _segment(r: Row) -> dict[str, str]:
    return dict(r.segment)


def _now() -> int:
    return int(time.time() * 1000)


@contextlib.contextmanager
def _watching(settings: Settings) -> Iterator[Watcher]:
    watcher = Watcher(settings).start()
    try:
        yield watcher
    finally:
        watcher.close()


def replay(settings: Settings, rows: list[Row], label_delay: int, rate: float,
           watcher: Watcher, echo: Callable[[str], None] = say) -> float:  # fmt: skip
    """Publish ``rows``' features at up to ``rate`` events/s, each label ``label_delay``
    events after its features, slowing down while the outcomes trail the features by
    more than the label delay plus :data:`MAX_LAG`, or the trainer's online learner (its
    newest checkpoint) trails the outcomes by more than :data:`MAX_LAG` (so the rate is
    the lower of ``rate`` and what the worker and the live loop keep up with); the status
    line goes to ``echo`` every second. Returns the seconds spent waiting (0: the loop
    kept up)."""
    codec = default_codec()
    p = Producer(producer_config(settings, "demo-app"))
    features, labels = settings.topic("features"), settings.topic("labels")
    fe_headers = for_confluent(build_headers("io.driftline.FeatureEvent", None, None))
    la_headers = for_confluent(build_headers("io.driftline.Label", None, None))

    def send_label(r: Row) -> None:
        p.produce(labels, codec.encode("io.driftline.Label", {
            "event_id": event_id(r.index), "model": MODEL, "label": r.label,
            "label_time_ms": _now()}), event_id(r.index).encode(), headers=la_headers)  # fmt: skip

    start = time.monotonic()
    last_print, paused, watch_learner = start, 0.0, True
    for k, r in enumerate(rows):
        p.produce(features, codec.encode("io.driftline.FeatureEvent", {
            "event_id": event_id(r.index), "model": MODEL, "event_time_ms": _now(),
            "features": r.features, "segment": _segment(r)}),
            event_id(r.index).encode(), headers=fe_headers)  # fmt: skip
        if k >= label_delay:
            send_label(rows[k - label_delay])
        if k % 100 == 0:
            p.poll(0)
            ahead = (k + 1) / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
            # backpressure: --rate is an upper bound; a loop whose outcomes trail far
            # behind would retrain and promote long after the drift it answers
            waited = time.monotonic()
            learnt, progress = watcher.seen.learnt, waited
            while (what := watcher.seen.behind(k, label_delay, MAX_LAG)) is not None:
                if what == "learner" and not watch_learner:
                    break
                if watcher.seen.learnt != learnt:
                    learnt, progress = watcher.seen.learnt, time.monotonic()
                if what == "learner" and time.monotonic() - progress > LEARNER_STALL_S:
                    watch_learner = False
                    echo(f"the online learner made no progress for {LEARNER_STALL_S:.0f} s: "
                         "the replay no longer waits for it")  # fmt: skip
                    break
                time.sleep(0.05)
            now = time.monotonic()
            paused += now - waited
            if now - last_print >= 1.0:
                last_print = now
                _status(watcher, k + 1, len(rows), (k + 1) / (now - start), echo)
    for r in rows[max(0, len(rows) - label_delay) :]:
        send_label(r)
    p.flush(60)
    return paused


def _status(
    watcher: Watcher, sent: int, total: int, rate: float, echo: Callable[[str], None]
) -> None:
    while not watcher.lines.empty():
        echo("  " + watcher.lines.get())
    s = watcher.seen
    acc = s.rolling_accuracy()
    echo(
        f"sent {sent:>7,}/{total:,} ({rate:,.0f} ev/s)  outcomes {len(s.outcomes):>7,}  "
        f"served {s.served() or '-'}  accuracy(500) {'-' if acc is None else f'{acc:.3f}'}  "
        f"incidents {len(s.firing())} firing/{len(s.incidents)}  triggers {len(s.triggers)}  "
        f"versions {len({v['version'] for _, v in s.versions})}"
    )


def _drain(watcher: Watcher, echo: Callable[[str], None]) -> None:
    time.sleep(2)
    while not watcher.lines.empty():
        echo("  " + watcher.lines.get())


def _report(opts: Options, rows: list[Row], frozen_model: Any, watcher: Watcher,
            elapsed: float) -> Path:  # fmt: skip
    s = watcher.seen
    replayed = rows[opts.warmup :]
    served = sorted((i, ok) for i, (_, ok) in s.outcomes.items())
    frozen = [(r.index, frozen_model.predict_one(r.features)[0] == r.label) for r in replayed]
    drifts = change_points(opts.stream, opts.events, opts.drift_every)
    first_served: dict[str, int] = {}
    for i, (version, _) in sorted(s.outcomes.items()):
        first_served.setdefault(version, i)
    champions = [v["version"] for _, v in s.versions if v["stage"] == "champion"][1:]
    promotions = [(first_served[v], v) for v in champions if v in first_served]
    plot_path = opts.out / "accuracy.png"
    report.plot(
        plot_path, served, frozen, drifts,
        {"triggers": [(i, ",".join(t["reasons"])) for i, t in s.triggers],
         "promotions": promotions},
        incidents=report.spans(s.incidents.values(), last=max(served)[0] if served else 0),
        window=500, title=f"{opts.stream}: {opts.events:,} events, label delay {opts.label_delay}",
    )  # fmt: skip
    first = drifts[0] if drifts else opts.warmup
    summary = {
        "stream": opts.stream, "events replayed": len(replayed), "outcomes": len(served),
        "seconds": round(elapsed, 1), "concept changes at": drifts,
        "served accuracy (all)": round(report.accuracy_after(served, 0), 4),
        "frozen accuracy (all)": round(report.accuracy_after(frozen, 0), 4),
        "served accuracy after the first change": round(report.accuracy_after(served, first), 4),
        "frozen accuracy after the first change": round(report.accuracy_after(frozen, first), 4),
        "alert records": len(s.alerts),
        "incidents opened": len(s.incidents),
        "incidents resolved": len(s.incidents) - len(s.firing()),
        "incidents firing at the end": len(s.firing()),
        "incidents by cause": dict(Counter(r[0][1]["kind"] for r in s.incidents.values())),
        "retrain triggers": len(s.triggers),
        "versions promoted": len(promotions),
        "dead letters": dict(s.dead),
    }  # fmt: skip
    # how fast the trainer reacts: trigger -> answer, trigger -> the answer serving
    reactions = report.reaction([t for _, t in s.triggers], [v for _, v in s.versions],
                                s.first_served, s.event_ms)  # fmt: skip
    summary["trigger to answer (s)"] = report.percentiles([r["answer_s"] for r in reactions])
    summary["trigger to serving (s)"] = report.percentiles([r["serve_s"] for r in reactions])
    summary["trigger to serving (events)"] = report.percentiles(
        [r["serve_events"] for r in reactions]
    )
    (opts.out / "reactions.json").write_text(json.dumps(reactions, indent=2))
    latest: dict[str, dict[str, Any]] = {}
    for _, v in s.versions:
        latest[v["version"]] = v
    events = [f"@{i:>6}: {_alert_line(a)}" for i, a in s.alerts]
    events += [f"@{i:>6}: TRIGGER {', '.join(t['reasons'])}" for i, t in s.triggers]
    events += [
        f"@{i:>6}: {v['version']} -> {v['stage']} ({v['stage_reason']})" for i, v in s.versions
    ]
    champion = next((v for _, v in reversed(s.versions) if v["stage"] == "champion"), None)
    drift = drift_panel.section(
        opts.out, s.alerts, drift_panel.profile_of(champion),
        [r.features for r in replayed[-drift_panel.CURRENT :]],
        version=champion["version"] if champion else "-", dates=False,
        axis="event (stream position)",
    )  # fmt: skip
    return report.write(opts.out, summary, plot_path, list(latest.values()), sorted(events),
                        list(s.incidents.values()), list(s.checks.values()),
                        drift=drift)  # fmt: skip


def _alert_line(a: dict[str, Any]) -> str:
    if a.get("state") is None:
        return f"ALERT {a['kind']}: {a['message']}"
    return f"INCIDENT {a['state']} {a['severity']} {a['kind']}: {a['message']}"
