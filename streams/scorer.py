"""The scorer: validate and score feature events, publish predictions.

Stateless, so it runs as a confluent-kafka consume -> score -> produce loop on its own
thread inside the Faust worker (a ``mode.Service``): measured several times faster than
Faust's per-event consumer for this work (docs/architecture.md). Exactly-once: each
batch's predictions, dead letters and alerts are produced in one Kafka transaction with
the batch's input offsets (driftline/kafka/txn.py), so a crash or a rebalance replays at most the
batch in flight, and read_committed readers see each prediction once.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, Message, Producer

from driftline.core.errors import CodecError, DriftlineError, ModelError
from driftline.core.model.scoring import Scoring
from driftline.core.wire.codec import Codec
from driftline.core.wire.deadletter import Origin, dead_letter
from driftline.core.wire.headers import TRACE_ID, header_list, header_value
from driftline.core.wire.headers import build as record_headers
from driftline.kafka.clients import consumer_config
from driftline.kafka.helpers import take_batch
from driftline.kafka.txn import (
    Transactions,
    consumer_lag,
    loop_consumer_settings,
    usable,
)
from driftline.settings import Settings
from driftline.streams import telemetry as m

log = logging.getLogger(__name__)

PREDICTION = "io.driftline.Prediction"
DEAD_LETTER = "io.driftline.DeadLetter"
ALERT = "io.driftline.Alert"
OnBatch = Callable[[int, Counter[tuple[str, str]], list[dict[str, Any]]], None]
"""``on_batch(now_ms, scored per (model, version), dead letters naming a model)``."""


def model_error_alert(exc: ModelError, now_ms: int) -> dict[str, Any]:
    """The Alert for a model that raised or returned non-finite output."""
    what = "returned non-finite output" if exc.reason == "non_finite_output" else "raised"
    return {
        "alert_id": str(uuid.uuid4()),
        "model": exc.model or "",
        "version": exc.version,
        "segment": None,
        "kind": "numerical_instability" if exc.reason == "non_finite_output" else "model_error",
        "severity": "critical",
        "message": (
            f"Model {exc.model} version {exc.version} {what} while scoring; the event went "
            f"to the dead-letter topic ({exc.detail[:200]})."
        ),
        "evidence": {"reason": exc.reason},
        "created_at_ms": now_ms,
    }


class ScorerLoop:
    """One consume-score-produce loop. ``run`` blocks until ``stop`` is set."""

    def __init__(
        self,
        settings: Settings,
        scoring: Scoring,
        codec: Codec,
        *,
        group_id: str,
        batch_size: int = 2_000,
        poll_timeout_s: float = 0.05,
        alert_every_ms: int = 60_000,
        lag_every_s: float = 5.0,
    ) -> None:
        self.settings = settings
        self.scoring = scoring
        self.codec = codec
        self.batch_size = batch_size
        self.poll_timeout_s = poll_timeout_s
        self.alert_every_ms = alert_every_ms
        self.alerts = settings.topic("alerts")
        self._last_alert: dict[tuple[str | None, str | None, str], int] = {}
        self.features = settings.topic("features")
        self.predictions = settings.topic("predictions")
        self.shadow = settings.topic("predictions.shadow")
        self.deadletter = settings.topic("deadletter")
        self.consumer = Consumer(
            consumer_config(
                settings,
                "scorer",
                group_id,
                **loop_consumer_settings(settings, **{"fetch.min.bytes": 1}),
            )
        )
        self.txn = Transactions.for_loop(
            settings, "scorer", group_id, self.consumer, observer=m.TXN_METRICS
        )
        self.processed = 0
        self.on_batch: OnBatch | None = None
        """Called (on this thread) after each committed batch with its clock, the events
        it scored per (model, champion version: each event once, its challengers'
        predictions not counted) and its dead letters that name a model: the monitor's
        skew rate counts both sides of one batch together."""
        self.lag: int | None = None
        """Messages behind the end of the assigned partitions, at the last look."""
        self.lag_every_s = lag_every_s
        self._lag_due = 0.0

    @property
    def producer(self) -> Producer:
        """The current transactional producer (replaced when fenced)."""
        return self.txn.producer

    def run(self, stop: threading.Event) -> None:
        """Score until ``stop`` is set; then close (between batches: nothing is open)."""
        self.txn.init()
        self.consumer.subscribe(
            [self.features],
            on_assign=lambda c, tps: log.info(
                "scorer: assigned %s", sorted(tp.partition for tp in tps)
            ),
            on_revoke=lambda c, tps: log.info(
                "scorer: revoked %s", sorted(tp.partition for tp in tps)
            ),
        )
        while not stop.is_set():
            msgs = self.next_batch()
            if msgs:
                self.process(msgs)
            if time.monotonic() >= self._lag_due:
                self._lag_due = time.monotonic() + self.lag_every_s
                self.export_lag()
        # Closed only on a clean stop: after a fatal client error, close() can hang,
        # and the thread must end so that the watchdog restarts the worker.
        self.producer.flush(30)
        self.consumer.close()

    def next_batch(self) -> list[Message]:
        """Up to ``batch_size`` messages (:func:`driftline.kafka.helpers.take_batch`)."""
        return take_batch(self.consumer, self.batch_size, self.poll_timeout_s)

    def export_lag(self) -> None:
        """Set ``lag`` and the ``driftline_consumer_lag{stage="score"}`` gauge: the cached
        high watermark (updated by every fetch) minus the position, summed over the
        assigned partitions. Local calls only: no broker round trip."""
        lag = consumer_lag(self.consumer)
        self.lag = lag
        m.CONSUMER_LAG.labels("score").set(lag)

    def process(self, msgs: list[Message]) -> None:
        """Score one batch and commit it with its output in one transaction. An aborted
        transaction rewinds the consumer: the batch is read and scored again."""
        t0 = time.perf_counter()
        now_ms = int(time.time() * 1000)
        dead: Counter[tuple[str, ...]] = Counter()
        dead_records: list[dict[str, Any]] = []
        scored: Counter[tuple[str, str]] = Counter()
        ok = 0

        def produce_batch() -> None:
            nonlocal ok
            ok = 0
            dead.clear()
            dead_records.clear()
            scored.clear()
            for msg in msgs:
                if usable(msg):
                    ok += self._score(msg, now_ms, dead, dead_records, scored)

        if not self.txn.run(msgs, produce_batch):
            return
        if self.on_batch is not None:
            self.on_batch(now_ms, scored, dead_records)
        self.processed += len(msgs)
        m.EVENTS_IN.labels("score").inc(len(msgs))
        m.EVENTS_OUT.labels("score").inc(ok)
        m.add_tally(m.DEAD_LETTERS, dead)
        m.BATCH_SECONDS.labels("score").observe(time.perf_counter() - t0)

    def _score(
        self,
        msg: Message,
        now_ms: int,
        dead: Counter[tuple[str, ...]],
        dead_records: list[dict[str, Any]],
        scored: Counter[tuple[str, str]],
    ) -> int:
        """Produce the prediction (and shadows) of one event, or its dead letter; 1 if scored."""
        raw = msg.value() or b""
        key = msg.key()
        try:
            s = self.scoring.score(raw, key, now_ms)
        except DriftlineError as exc:
            stage = (
                "decode"
                if isinstance(exc, CodecError)
                else "score"
                if isinstance(exc, ModelError)
                else "validate"
            )
            reason = getattr(exc, "reason", "invalid")
            model = getattr(exc, "model", None)
            record = self._dead_letter(msg, raw, stage, reason, str(exc), now_ms, model)
            if model is not None:
                dead_records.append(record)
            dead[(stage, reason)] += 1
            if isinstance(exc, ModelError) and exc.reason != "no_champion":
                self._model_alert(exc, now_ms)
            return 0
        except Exception as exc:  # never drop an event: anything unexpected is dead-lettered
            log.exception("scorer: unexpected error at %s:%s", msg.topic(), msg.offset())
            self._dead_letter(msg, raw, "score", "internal_error", repr(exc), now_ms)
            dead[("score", "internal_error")] += 1
            return 0
        for error in s.shadow_errors:
            self._model_alert(error, now_ms)
        trace = header_value(msg.headers(), TRACE_ID)
        hdrs = record_headers(PREDICTION, s.event_time_ms, trace.decode() if trace else None)
        self.txn.produce(self.predictions, s.prediction, key, hdrs)
        for shadow in s.shadows:  # one per challenger; the champion's carries them too
            self.txn.produce(self.shadow, shadow, key, hdrs)
        # one event, counted once for the skew rate, under the champion's version that
        # served it: its challengers' predictions are not events of their own
        scored[(s.model, s.version)] += 1
        return 1

    def _dead_letter(
        self,
        msg: Message,
        raw: bytes,
        stage: str,
        reason: str,
        detail: str,
        now_ms: int,
        model: str | None = None,
    ) -> dict[str, Any]:
        ts_type, ts = msg.timestamp()
        origin = Origin(
            msg.topic() or "",
            msg.partition() or 0,
            msg.offset() or 0,
            msg.key(),
            ts if ts_type else None,
            header_list(msg.headers()),
        )
        record, hdrs = dead_letter(
            origin, stage=stage, reason=reason, detail=detail, raw=raw, model=model, now_ms=now_ms
        )
        self.txn.produce(
            self.deadletter,
            self.codec.encode(DEAD_LETTER, record),
            record["source_key"],  # the source key, cut if it is huge (core/wire/deadletter.py)
            hdrs,
        )
        return record

    def _model_alert(self, exc: ModelError, now_ms: int) -> None:
        """At most one alert per model, version and reason every ``alert_every_ms``."""
        k = (exc.model, exc.version, exc.reason)
        if now_ms - self._last_alert.get(k, -self.alert_every_ms) < self.alert_every_ms:
            return
        self._last_alert[k] = now_ms
        alert = model_error_alert(exc, now_ms)
        log.info("alert: %s %s %s %s: %s", alert["model"], alert.get("version") or "-",
                 alert["kind"], alert["severity"], alert["message"])  # fmt: skip
        self.txn.produce(
            self.alerts,
            self.codec.encode(ALERT, alert),
            (exc.model or "").encode(),
            record_headers(ALERT, now_ms, None),
        )
