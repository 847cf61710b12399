"""The monitor agent: predictions, outcomes and dead letters in; metric snapshots,
alerts and retrain triggers out. All judgement is in driftline.core.monitor.

One agent reads the three topics, so a worker's monitor sees every prediction and
outcome of the partitions it owns; with one worker that is all of them. (Several
workers each watch their share; repartitioning by model is the follow-up noted in
docs/architecture.md.)
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import faust

from driftline.core.codec import Codec
from driftline.core.errors import CodecError
from driftline.core.headers import build as record_headers
from driftline.core.modelconfig import ModelConfig, ModelsConfig
from driftline.core.monitor import Emit, ModelMonitor
from driftline.streams import metrics as m

log = logging.getLogger(__name__)

PREDICTION = "io.driftline.Prediction"
OUTCOME = "io.driftline.Outcome"
DEAD_LETTER = "io.driftline.DeadLetter"
RECORD = {
    "metrics": "io.driftline.MetricSnapshot",
    "alerts": "io.driftline.Alert",
    "retrain": "io.driftline.RetrainTrigger",
}


def now_ms() -> int:
    return int(time.time() * 1000)


class Monitors:
    """One ModelMonitor per model, fed in order; registry changes are queued by the
    registry thread and applied on the event loop."""

    def __init__(self, models: ModelsConfig, window_size: int = 1_000) -> None:
        self.models = models
        self.window_size = window_size
        self.by_model: dict[str, ModelMonitor] = {}
        self.versions: deque[dict[str, Any]] = deque()

    def get(self, model: str, task: str | None = None) -> ModelMonitor:
        mon = self.by_model.get(model)
        if mon is None:
            config = self.models.get(model) or ModelConfig(model, task=task or "classification")
            mon = self.by_model[model] = ModelMonitor(config, window_size=self.window_size)
        return mon

    def sync_versions(self, now: int) -> None:
        while self.versions:
            record = self.versions.popleft()
            self.get(record["model"], record.get("task")).on_version(record, now)


def export(emit: Emit) -> None:
    """Mirror what a monitor publishes into Prometheus."""
    v = emit.value
    if emit.topic == "metrics" and v["segment"] == "all":
        for name, value in v["metrics"].items():
            m.MODEL_METRIC.labels(v["model"], v["version"], "all", v["window"], name).set(value)
            if name.startswith(("psi.", "ks.")):
                stat, feature = name.split(".", 1)
                m.DRIFT_SCORE.labels(v["model"], v["version"], feature, stat).set(value)
        for name, value in v.get("baseline", {}).items():
            m.MODEL_BASELINE.labels(v["model"], v["version"], name).set(value)
    elif emit.topic == "alerts":
        m.ALERTS.labels(v["model"], v["kind"], v["severity"]).inc()
        if v["kind"].endswith("drift"):
            m.DRIFT_DETECTIONS.labels(v["model"], v["kind"]).inc()
    elif emit.topic == "retrain":
        m.RETRAIN_TRIGGERS.labels(v["model"]).inc()


def install(
    app: faust.App,
    codec: Codec,
    monitors: Monitors,
    topic: Callable[[str], str],
    tick_every_s: float,
    on_emit: Callable[[Emit], None] | None = None,
) -> None:
    """Add the monitor agent and its tick timer to ``app``."""
    source = app.topic(
        topic("predictions"), topic("outcomes"), topic("deadletter"),
        key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
    )  # fmt: skip
    outputs = {
        name: app.topic(topic(name), key_serializer="raw", value_serializer="raw")
        for name in RECORD
    }

    async def publish(emits: list[Emit]) -> None:
        for e in emits:
            value = codec.encode(RECORD[e.topic], e.value)
            hdrs = record_headers(RECORD[e.topic], e.value.get("created_at_ms"), None)
            await outputs[e.topic].send(key=e.model.encode(), value=value, headers=hdrs)
            export(e)
            if on_emit is not None:
                on_emit(e)

    @app.agent(source, name="driftline-monitor")
    async def monitor(stream: Any) -> None:
        async for events in stream.take_events(1_000, within=0.1):
            now = now_ms()
            monitors.sync_versions(now)
            emits: list[Emit] = []
            for event in events:
                try:
                    decoded = codec.decode(event.message.value or b"")
                except CodecError:
                    continue  # the scorer and join dead-letter what they cannot decode
                v = decoded.value
                if decoded.name == OUTCOME:
                    emits += monitors.get(v["model"]).observe_outcome(v, now)
                elif decoded.name == PREDICTION:
                    monitors.get(v["model"]).observe_prediction(v)
                elif decoded.name == DEAD_LETTER and v.get("model"):
                    monitors.get(v["model"]).observe_dead_letter(v)
            m.EVENTS_IN.labels("monitor").inc(len(events))
            await publish(emits)

    @app.timer(tick_every_s, name="driftline-monitor-tick")  # type: ignore[untyped-decorator]
    async def tick() -> None:
        now = now_ms()
        monitors.sync_versions(now)
        for mon in list(monitors.by_model.values()):
            await publish(mon.tick(now))
