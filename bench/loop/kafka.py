"""The loop through a real broker: ``driftline worker`` and ``driftline trainer`` as child
processes, the stream replayed at a rate, served accuracy read back from Kafka.

Each run uses the demo's machinery (:mod:`driftline.demo.run`): its settings (3 data
partitions, a metric snapshot every second), its models file for the stream kind (the
same factory, parameters, gate and retrain policy as the in-process loop), a first
champion bootstrapped on the warm-up events and published to the registry, a worker and
a trainer started as ``driftline`` commands, and ``replay``: features at up to the target
rate, each label ``delay`` events after its features, slowed down while the outcomes
trail the features by more than the label delay plus 1,500 events, or the trainer's online
learner (its newest checkpoint) trails the outcomes by more than 1,500 (so the rate
achieved is the lower of the target and what the worker and the trainer's live loop keep
up with: a loop replayed faster than it learns serves a stale learner). Runs share one
broker, each under its own topic prefix with fresh processes, logs in its own directory.

After the last outcome arrived, the run reads (read_committed, from the beginning):
- predictions: served accuracy is every replayed event's served prediction against its
  label (a missing prediction counts as wrong; duplicates are counted); the achieved rate
  is the replayed events over the span of their features' event times, which the replay
  stamps as it sends; scoring latency is ``predicted_at_ms - event_time_ms``;
- outcomes: how long each label took to reach its outcome record (the join) and the
  online learner's published state (the first checkpoint whose offsets reach past it:
  :func:`bench.loop.lineage.label_to_learnt`), in seconds of wall clock; at the achieved
  rate, the events by which the loop's labels arrive later than the replay's delay;
- retrain: every trigger's id and creation time;
- registry: promotions, rollbacks and rejections (:func:`bench.loop.lineage.stage_counts`),
  and trigger-to-serving time in seconds and in events for every promoted version whose
  lineage names a trigger (:func:`bench.loop.lineage.trigger_to_serving`).
"""

from __future__ import annotations

import math
import statistics
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from confluent_kafka.admin import AdminClient

from bench.loop.lineage import (
    first_served,
    label_to_learnt,
    onset_delays,
    percentile,
    positions,
    stage_counts,
    trigger_to_serving,
)
from driftline.core.wire.codec import default_codec
from driftline.demo import run as demo
from driftline.demo.synthetic import change_points, drifting_stream, transition
from driftline.demo.watch import event_index, wait_for
from driftline.kafka.clients import admin_config
from driftline.kafka.helpers import consume_to_end, reader
from driftline.settings import Settings

READ = ("predictions", "retrain", "registry", "alerts", "outcomes")


@dataclass(frozen=True)
class KafkaTask:
    kind: str
    seed: int
    delay: int
    events: int
    drift_every: int
    rate: float
    """Target events per second."""
    warmup: int = 2_000

    @property
    def name(self) -> str:
        return f"{self.kind}-s{self.seed}-d{self.delay}-r{self.rate:g}"


def run_kafka(task: KafkaTask, bootstrap_servers: str, root: Path) -> dict[str, Any]:
    """One run through the broker at ``bootstrap_servers``; logs and files under
    ``root/<task name>``. A JSON-compatible result."""
    out = root / task.name
    out.mkdir(parents=True, exist_ok=True)
    opts = demo.Options()
    (out / "models.toml").write_text(demo.models_toml(task.kind, opts.min_rows, opts.max_rows))
    settings = demo.settings_for(bootstrap_servers, f"bl-{uuid.uuid4().hex[:6]}.", out)
    rows = list(drifting_stream(task.kind, task.events, task.drift_every, task.seed))
    warm, replayed = rows[: task.warmup], rows[task.warmup :]
    t0 = time.monotonic()
    with (out / "replay.log").open("w") as log:

        def echo(line: str) -> None:
            print(line, file=log, flush=True)

        with demo.closed_loop(settings, warm, out, echo) as (_, watcher):
            started = time.monotonic()
            paused = demo.replay(settings, replayed, task.delay, task.rate, watcher, echo)
            replay_s = time.monotonic() - started
            complete = wait_for(lambda: len(watcher.seen.outcomes) >= len(replayed), 300)
            drained_s = time.monotonic() - started
    got = _read(settings)
    _delete_topics(settings)
    onsets = change_points(task.kind, task.events, task.drift_every)
    result = measure(replayed, got, onsets, transition(task.kind, task.drift_every))
    result.update(
        task=asdict(task), complete=complete, outcomes=len(watcher.seen.outcomes),
        outcome_accuracy=_mean(ok for _, ok in watcher.seen.outcomes.values()),
        replay_seconds=replay_s, paused_seconds=paused, drained_seconds=drained_s,
        seconds=time.monotonic() - t0, dir=str(out),
    )  # fmt: skip
    return result


def _read(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """Every record of the topics in :data:`READ`, decoded, in partition/offset order."""
    codec = default_codec()
    c = reader(settings, "bench-loop", **{"enable.partition.eof": True})
    try:
        ends: dict[tuple[str, int], int] = {}
        for t in READ:
            topic = settings.topic(t)
            for p in c.list_topics(topic, timeout=30).topics[topic].partitions:
                ends[(topic, p)] = c.get_watermark_offsets(TopicPartition(topic, p), 30)[1]
        c.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in ends])
        names = {settings.topic(t): t for t in READ}
        out: dict[str, list[dict[str, Any]]] = {t: [] for t in READ}

        def add(m: Any) -> None:
            name = names[m.topic() or ""]
            value = codec.decode(m.value() or b"").value
            if name == "outcomes":  # where and when the join wrote it
                value = {**value, "_at": (m.partition(), m.offset(), m.timestamp()[1])}
            out[name].append(value)

        consume_to_end(c, ends, add)
        return out
    finally:
        c.close()


def _delete_topics(settings: Settings) -> None:
    """Drop the run's topics (the next runs share the broker)."""
    admin = AdminClient(admin_config(settings))
    prefix = settings.topic_prefix
    names = [t for t in admin.list_topics(timeout=30).topics if t.startswith(prefix)]
    if names:
        for f in admin.delete_topics(names, operation_timeout=30).values():
            f.result()


def measure(
    replayed: list[Any],
    got: dict[str, list[dict[str, Any]]],
    onsets: list[int] | None = None,
    width: int = 0,
) -> dict[str, Any]:
    """Served accuracy, rates, latency, triggers, promotions, trigger-to-serving and, for
    the stream's change points ``onsets``, drift onset to alarm and to serving in events
    (:func:`bench.loop.lineage.onset_delays`; an alarm is a concept-drift alert, placed
    in the stream by its creation time; the alerts' cooldown may hold back a second
    alert of the same version)."""
    labels = {r.index: r.label for r in replayed}
    preds: dict[int, dict[str, Any]] = {}
    duplicates = 0
    for p in got["predictions"]:
        i = event_index(p["event_id"])
        if i in preds:
            duplicates += 1
            continue
        preds[i] = p
    correct = sum(1 for i, y in labels.items() if i in preds and preds[i]["prediction"] == y)
    sent = sorted(p["event_time_ms"] for p in preds.values())
    scored = sorted(p["predicted_at_ms"] for p in preds.values())
    latency = [p["predicted_at_ms"] - p["event_time_ms"] for p in preds.values()]
    triggers = {t["trigger_id"]: t["created_at_ms"] for t in got["retrain"]}
    registry = sorted(got["registry"], key=lambda r: r["stage_changed_at_ms"])
    champions = [r for r in registry if r["stage"] == "champion"]
    served = [(p["predicted_at_ms"], i, p["version"]) for i, p in preds.items()]
    t2s = trigger_to_serving(triggers, champions, served)
    alarm_ms = [a["created_at_ms"] for a in got["alerts"] if a["kind"] == "concept_drift"]
    onset = onset_delays(onsets or [], positions(served, alarm_ms),
                         first_served((i, v) for _, i, v in served).values(), width)  # fmt: skip
    lag = label_to_learnt(got.get("outcomes", []),
                          [r for r in registry if r["stage"] == "checkpoint"])  # fmt: skip
    reasons: dict[str, int] = {}
    for t in got["retrain"]:
        for r in t["reasons"]:
            reasons[r] = reasons.get(r, 0) + 1
    return {
        "accuracy": correct / max(1, len(labels)),
        "predictions": len(preds),
        "missing": len(labels) - sum(1 for i in labels if i in preds),
        "duplicates": duplicates,
        "rate": _rate(sent),
        "scored_rate": _rate(scored),
        "latency_ms": {"p50": percentile(latency, 50), "p99": percentile(latency, 99)},
        "triggers": len(triggers),
        "reasons": dict(sorted(reasons.items())),
        "alerts": sum(1 for a in got["alerts"] if a["kind"] == "concept_drift"),
        **stage_counts(registry),
        "versions": len({r["version"] for r in registry}),
        "trigger_to_serving": t2s,
        "t2s_seconds": _p(t["seconds"] for t in t2s),
        "t2s_events": _p(t["events"] for t in t2s),
        "onset_delays": onset,
        "label_to_outcome_ms": _p(lag["join"]),
        "label_to_learnt_ms": _p(lag["learnt"]),
        "outcome_to_learnt_ms": _p(lag["loop"]),
    }


def _mean(flags: Any) -> float:
    v = list(flags)
    return sum(v) / len(v) if v else math.nan


def _rate(times_ms: list[int]) -> float:
    span = (times_ms[-1] - times_ms[0]) / 1000 if len(times_ms) > 1 else 0.0
    return (len(times_ms) - 1) / span if span > 0 else math.nan


def _p(xs: Any) -> dict[str, float]:
    v = list(xs)
    return {"p50": percentile(v, 50), "p99": percentile(v, 99),
            "mean": statistics.fmean(v) if v else math.nan}  # fmt: skip
