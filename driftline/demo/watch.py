"""What the demo sees: a consumer thread reading Driftline's outputs, kept as plain data
for the live view and the report."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer

from driftline.core.errors import CodecError
from driftline.core.wire.codec import default_codec
from driftline.kafka.clients import consumer_config
from driftline.settings import Settings

TOPICS = ("outcomes", "alerts", "retrain", "registry", "deadletter", "metrics")


def event_index(event_id: str) -> int:
    """The stream position encoded in a demo event id (``demo-000123``)."""
    return int(event_id.rsplit("-", 1)[1])


@dataclass
class Seen:
    """Everything the demo has seen, in arrival order."""

    outcomes: dict[int, tuple[str, bool]] = field(default_factory=dict)
    alerts: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    """Every record of the alerts topic: incidents (opened, escalated, resolved), notices."""
    incidents: dict[str, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    """The records of each incident, by incident id, in order."""
    triggers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    versions: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    dead: Counter[str] = field(default_factory=Counter)
    checks: dict[tuple[str, int], tuple[int, dict[str, Any]]] = field(default_factory=dict)
    """The estimator checked against labels (snapshots ``estimate-check:N`` on segment
    'all'), the last word per (version, chunk start), with the stream position it came."""
    last_index: int = 0
    recent: deque[tuple[str, bool]] = field(default_factory=lambda: deque(maxlen=500))
    event_ms: dict[int, int] = field(default_factory=dict)
    """Stream position -> the event's time (when the demo published its features)."""
    first_served: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Version -> (stream position, predicted_at_ms) of the first outcome it served."""
    learnt: int | None = None
    """Outcomes (by offset on the outcomes topic) the newest online checkpoint holds;
    None before the trainer's live loop published one."""

    def behind(self, sent: int, label_delay: int, max_lag: int) -> str | None:
        """What trails the replay by more than ``max_lag`` events, if anything: the
        worker (outcomes behind the features sent, beyond the label delay) or the trainer's
        online learner (its newest checkpoint behind the outcomes).

        >>> s = Seen(outcomes={i: ("v1", True) for i in range(1_000)})
        >>> s.behind(3_000, 500, 1_500), s.behind(3_001, 500, 1_500)
        (None, 'worker')
        >>> s.learnt = 0  # a learner whose first checkpoint holds nothing yet
        >>> s.behind(1_000, 500, 999), s.behind(1_000, 500, 1_000)
        ('learner', None)
        """
        if sent - label_delay - len(self.outcomes) > max_lag:
            return "worker"
        if self.learnt is not None and len(self.outcomes) - self.learnt > max_lag:
            return "learner"
        return None

    def served(self) -> str | None:
        return self.recent[-1][0] if self.recent else None

    def rolling_accuracy(self) -> float | None:
        # the watcher thread appends meanwhile: one copy (list() of a deque runs in C
        # under the GIL), not a generator over the deque ("deque mutated during iteration")
        recent = list(self.recent)
        if not recent:
            return None
        return sum(ok for _, ok in recent) / len(recent)

    def firing(self) -> list[str]:
        """Ids of the incidents still firing."""
        return [i for i, recs in self.incidents.items() if recs[-1][1]["state"] == "firing"]


class Watcher:
    """Reads outcomes, alerts, triggers, registry and dead letters on a thread; lines
    worth printing go to ``lines``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.seen = Seen()
        self.lines: queue.Queue[str] = queue.Queue()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="demo-watch", daemon=True)

    def start(self) -> Watcher:
        self.thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)

    def _run(self) -> None:
        codec = default_codec()
        group = f"{self.settings.group('demo-watch')}-{uuid.uuid4().hex[:8]}"
        c = Consumer(consumer_config(self.settings, "demo", group, **{"enable.auto.commit": False}))
        c.subscribe([self.settings.topic(t) for t in TOPICS])
        try:
            while not self.stop.is_set():
                for msg in c.consume(2000, 0.2):
                    if msg.error() is not None or msg.value() is None:
                        continue
                    try:
                        decoded = codec.decode(msg.value() or b"")
                    except CodecError:
                        continue
                    self._take(decoded.name.rsplit(".", 1)[1], decoded.value)
        finally:
            c.close()

    def _take(self, kind: str, v: dict[str, Any]) -> None:
        s = self.seen
        if kind == "Outcome":
            i = event_index(v["event_id"])
            ok = v["prediction"] == v["label"]
            s.outcomes[i] = (v["version"], ok)
            s.event_ms[i] = v["event_time_ms"]
            first = s.first_served.get(v["version"])
            if first is None or i < first[0]:
                s.first_served[v["version"]] = (i, v["predicted_at_ms"])
            s.recent.append((v["version"], ok))
            s.last_index = max(s.last_index, i)
        elif kind == "Alert":
            s.alerts.append((s.last_index, v))
            state = v.get("state")
            if state is None:
                self.lines.put(f"ALERT   {v['severity']:<8} {v['kind']}: {v['message']}")
                return
            s.incidents.setdefault(v["incident_id"], []).append((s.last_index, v))
            if state == "resolved":
                what = "RESOLVED"
            else:
                what = "INCIDENT" if v["opened_at_ms"] == v["created_at_ms"] else "ESCALATE"
            self.lines.put(f"{what:<9}{v['severity']:<9}{v['kind']}: {v['message']}")
        elif kind == "RetrainTrigger":
            s.triggers.append((s.last_index, v))
            window = f"last {v['last_n']} outcomes" if v.get("last_n") else "recent outcomes"
            self.lines.put(
                f"RETRAIN trigger {len(s.triggers)} for {v['model']}: "
                f"{', '.join(v['reasons'])}; train on {window}"
            )
        elif kind == "ModelVersion":
            if v["stage"] == "checkpoint":
                ends = sum(r["end_offset"] for r in v["lineage"].get("data_ranges") or [])
                s.learnt = max(s.learnt or 0, ends)
            s.versions.append((s.last_index, v))
            gate = v.get("gate") or {}
            verdict = f" (gate: {gate['summary']})" if gate.get("summary") else ""
            self.lines.put(
                f"VERSION {v['model']} {v['version']} -> {v['stage']}: {v['stage_reason']}"
                + (verdict if v["stage"] in ("champion", "rejected", "candidate") else "")
            )
        elif kind == "DeadLetter":
            s.dead[v["reason"]] += 1
        elif (
            kind == "MetricSnapshot"
            and v["segment"] == "all"
            and v["window"].startswith("estimate-check")
        ):  # the last word on each chunk
            s.checks[(v["version"], v["window_start_ms"])] = (s.last_index, v)


def wait_for(predicate: Any, timeout: float, step: float = 0.5) -> bool:
    """Poll ``predicate()`` until true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())
