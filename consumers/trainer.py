"""The trainer: answers retrain triggers with gated model versions on the registry topic.

One consumer group reads the retrain topic (keyed by model, so one trainer owns a model's
triggers). For each trigger, in order:

1. catch up with the registry topic; a trigger whose idempotency key (or id) a version
   already answers is skipped;
2. read the model's outcomes in the trigger's window (``offsets_for_times`` and/or the
   last N) with a separate ``assign()`` consumer, which keeps what it read: a later
   trigger reads only the outcomes that arrived since (``OutcomeReader``);
3. answer it (:func:`driftline.core.lifecycle.answer.answer_trigger`: config, training
   set, train, gate, stage, alerts; all decisions live there) in a child process
   (:mod:`driftline.consumers.train_pool`, started and warmed with the trainer) while the
   main thread keeps polling the paused consumer, so a long run never exceeds
   ``max.poll.interval.ms``, and keeps the live loop going at full speed on its own
   core; a child that dies answers the trigger with a ``training_failed`` alert and is
   replaced for the next one;
4. publish what the answer holds: the candidate, then its stage (champion, the old one
   archived first, when the gate passes and promotion is ``auto``; challenger when
   ``manual``; else rejected), then its alerts. A would-be champion trained only on data
   from before the model's latest concept-drift alarm is held back first (``_hold_stale``:
   a challenger where the live loop decides, else gated again on the post-alarm outcomes
   or rejected);
5. only once the producer confirmed delivery, commit the trigger's offset.

With ``live`` (the ``driftline trainer`` command), the trainer also runs the live loop
(:mod:`driftline.consumers.live`) between triggers: an online challenger per model that
has one configured, learning every outcome as it arrives, and promotion, probation and
rollback on live paired evidence. A champion replaced by a trigger's answer then stays in
shadow on probation, so that live evidence can undo the promotion.

A run that fails publishes an Alert (kind ``training_failed``) and commits: a trigger
that cannot be trained is answered by the alert, not retried forever. A trigger with
too few rows is answered the same way, by a ``training_refused`` alert (status
``refused``; see :func:`~driftline.core.lifecycle.answer.answer_trigger`). A crash before
the commit replays the trigger, and step 1 keeps the answer single.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from prometheus_client import Counter, Histogram

from driftline.consumers import process
from driftline.consumers.live import LiveLoop
from driftline.consumers.outcomes import OutcomeReader
from driftline.consumers.train_pool import TrainPool, log_progress, store_in, wall_ms
from driftline.core.errors import CodecError, KafkaError
from driftline.core.lifecycle.answer import (
    Answer,
    answer_trigger,
    answered_by,
    failure_alert,
    hold_stale,
    latest_alarm_ms,
    restage_answer,
)
from driftline.core.model.config import ModelsConfig
from driftline.core.watch import models_file
from driftline.core.wire.codec import default_codec
from driftline.kafka.clients import consumer_config
from driftline.kafka.helpers import Publisher, events_since, keep_alive_until
from driftline.kafka.registry_follower import RegistryFollower
from driftline.reload import ModelsReloader
from driftline.settings import Settings

log = logging.getLogger("driftline.trainer")


_now_ms = wall_ms


TRAINING_SECONDS = Histogram(
    "driftline_trainer_run_seconds",
    "Wall time of one training run: read, train, gate and publish.",
    ["model"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800),
)
RUNS = Counter("driftline_trainer_runs_total", "Triggers handled, by outcome.", ["model", "status"])
ROWS = Histogram(
    "driftline_trainer_rows",
    "Rows (training plus held-out) of one training run.",
    buckets=(100, 1_000, 10_000, 100_000, 1_000_000),
)


@dataclass
class Outcome:
    """What the trainer did with one trigger."""

    trigger_id: str
    model: str
    status: str  # champion, challenger, rejected, refused, skipped, failed, undecodable
    version: str | None = None
    detail: str = ""
    alerts: tuple[str, ...] = ()
    """The kinds of the alerts published with the answer."""

    def describe(self) -> str:
        """What the trainer answered, for its one INFO line per trigger.

        >>> Outcome("t", "churn", "rejected", "churn-v2", alerts=("candidate_rejected",)).describe()
        'churn-v2 rejected; alerts: candidate_rejected'
        >>> Outcome("t", "churn", "refused", alerts=("training_refused",)).describe()
        'no version (refused); alerts: training_refused'
        """
        what = f"{self.version} {self.status}" if self.version else f"no version ({self.status})"
        return f"{what}; alerts: {', '.join(self.alerts)}" if self.alerts else what


class Trainer:
    """Consume retrain triggers and answer each with a gated version (see the module doc)."""

    def __init__(
        self,
        settings: Settings,
        models: ModelsConfig,
        *,
        group_id: str | None = None,
        consumer_overrides: Mapping[str, Any] | None = None,
        live: bool = False,
    ) -> None:
        self.settings = settings
        self._models = models
        self.key = settings.signing_key.get_secret_value().encode()
        self._store = store_in(settings.artifact_dir)
        conf = consumer_config(
            settings,
            "trainer",
            group_id or settings.group("trainer"),
            **{
                "enable.auto.commit": False,
                "max.poll.interval.ms": 600_000,
                **(consumer_overrides or {}),
            },
        )
        self.consumer = Consumer(conf)
        self.consumer.subscribe([settings.topic("retrain")])
        self.follower = RegistryFollower(settings)
        self.reader = OutcomeReader(settings)
        self.publisher = Publisher(settings, "trainer")
        self._pool = TrainPool(cfg.factory for cfg in models)
        self._pool.start()
        self.live: LiveLoop | None = None
        if live:
            self.live = LiveLoop(settings, models, self.follower, self.publisher, key=self.key,
                                 store=self._store)  # fmt: skip

    @property
    def models(self) -> ModelsConfig:
        return self._models

    @models.setter
    def models(self, models: ModelsConfig) -> None:
        self._models = models
        if self.live is not None:
            self.live.models = models

    # -- loop ------------------------------------------------------------------------

    def run(
        self,
        max_triggers: int | None = None,
        idle_timeout_s: float | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> list[Outcome]:
        """Handle triggers until ``max_triggers`` were handled, nothing arrived for
        ``idle_timeout_s``, or ``should_stop()``; the outcomes, in order."""
        done: list[Outcome] = []
        idle_since = time.monotonic()
        while not should_stop() and (max_triggers is None or len(done) < max_triggers):
            self._pump()
            msg = self.consumer.poll(0.5 if self.live is None else 0.01)
            if msg is None or msg.error() is not None:
                if msg is not None:
                    log.warning("retrain topic: %s", msg.error())
                if idle_timeout_s is not None and time.monotonic() - idle_since > idle_timeout_s:
                    break
                continue
            try:
                outcome = self.handle(msg)
            except KafkaError as exc:  # the cluster away (a broker restart): read it again
                log.warning("trigger at %s[%s]@%s not answered, read again in 1 s: %s",
                            msg.topic(), msg.partition(), msg.offset(), exc)  # fmt: skip
                tp = TopicPartition(msg.topic() or "", msg.partition() or 0, msg.offset() or 0)
                self.consumer.seek(tp)
                time.sleep(1)
                continue
            done.append(outcome)
            self._commit(msg)
            idle_since = time.monotonic()
        return done

    def _pump(self) -> int:
        """One step of the live loop, if it runs. A Kafka error (the cluster away: a broker
        restart) is logged and the loop goes on: its learners keep their state and
        positions, and the next step reads on from there (a trainer that exited instead
        lost its learners' progress since their last checkpoints)."""
        if self.live is None:
            return 0
        try:
            return self.live.pump(0.2)
        except KafkaError as exc:
            log.warning("live loop: %s; going on in 1 s", exc)
            time.sleep(1)
            return 0

    def _commit(self, msg: Message) -> None:
        tp = TopicPartition(msg.topic() or "", msg.partition() or 0, (msg.offset() or 0) + 1)
        try:
            self.consumer.commit(offsets=[tp], asynchronous=False)
        except KafkaException as exc:  # revoked meanwhile: the new owner skips it (answered)
            log.warning("could not commit trigger at %s: %s", tp, exc)

    # -- one trigger -----------------------------------------------------------------

    def handle(self, msg: Message) -> Outcome:
        """Answer the trigger in ``msg``: publish its versions (or an alert), flush."""
        t0 = time.monotonic()
        try:
            trigger = default_codec().decode(msg.value() or b"", expect="RetrainTrigger").value
        except CodecError as exc:
            log.error("retrain offset %s is no RetrainTrigger: %s", msg.offset(), exc)
            RUNS.labels("?", "undecodable").inc()
            return Outcome("?", "?", "undecodable", detail=str(exc))
        model = trigger["model"]
        self.follower.catch_up()
        reg = self.follower.registry
        answered = answered_by(reg, trigger)
        if answered is not None:
            log.info(
                "%s: trigger %s already answered by %s, skipped",
                model,
                trigger["trigger_id"],
                answered["version"],
            )
            RUNS.labels(model, "skipped").inc()
            return Outcome(trigger["trigger_id"], model, "skipped", answered["version"])
        run_id = str(uuid.uuid4())
        try:
            outcome = self._train_and_publish(trigger, run_id)
        except Exception as exc:  # any failure is answered by an alert
            log.exception("%s: training for trigger %s failed", model, trigger["trigger_id"])
            seconds = time.monotonic() - t0
            self._alert(
                failure_alert(
                    trigger,
                    run_id,
                    exc,
                    seconds=seconds,
                    host=socket.gethostname(),
                    now_ms=_now_ms(),
                )
            )
            self.publisher.flush()
            outcome = Outcome(trigger["trigger_id"], model, "failed", detail=str(exc),
                              alerts=("training_failed",))  # fmt: skip
        RUNS.labels(model, outcome.status).inc()
        TRAINING_SECONDS.labels(model).observe(time.monotonic() - t0)
        log.info(
            "%s: answered trigger %s (%s) with %s in %.1f s; %s", model, trigger["trigger_id"],
            ",".join(trigger["reasons"]), outcome.describe(), time.monotonic() - t0,
            self._since(trigger),
        )  # fmt: skip
        return outcome

    def _since(self, trigger: Mapping[str, Any]) -> str:
        """Trigger to answer, in seconds and in the events that arrived meanwhile."""
        created = int(trigger["created_at_ms"])
        try:
            events = f"{events_since(self.settings, created):,}"
        except KafkaError as exc:
            log.debug("events since the trigger: %s", exc)
            events = "?"
        return f"{(_now_ms() - created) / 1000:.1f} s and {events} events since the trigger"

    def _train_and_publish(self, trigger: Mapping[str, Any], run_id: str) -> Outcome:
        model, reg = trigger["model"], self.follower.registry
        started_ms = _now_ms()
        window = (trigger["window_start_ms"], trigger["window_end_ms"], trigger["last_n"])
        read = self.reader.read(model, start_ms=window[0], end_ms=window[1], last_n=window[2])
        log.info(
            "%s: read %d outcomes (%d messages, %d more held from earlier reads) from %d "
            "partitions in %.2f s",
            model,
            len(read.rows),
            read.messages,
            read.cached,
            len(read.ranges),
            read.seconds,
        )
        ROWS.observe(len(read.rows))
        champion = reg.champion(model)
        champion_then = None if champion is None else champion["version"]
        live = self.live
        # the live loop goes on while it trains (it changes the registry): the answer is
        # computed in the child on the registry as pickled now, its stages derived again
        # on the registry as it then stands
        future = self._pool.submit(
            answer_trigger,
            trigger,
            read.rows,
            reg,
            self.models,
            key=self.key,
            clock_ms=_now_ms,
            run_id=run_id,
            data_ranges=read.ranges,
            inline_max_bytes=self.settings.artifact_inline_max_bytes,
            max_challengers=self.settings.max_challengers,
            probation=live is not None and live.probation(model),
            store=self._store,
            started_at_ms=started_ms,
            step_ms={"read": round(read.seconds * 1000, 3)},
            progress=partial(log_progress, model),
        )
        answer = self._await(model, future)
        if live is not None:
            self.follower.catch_up()
            answer = restage_answer(
                answer, reg, champion_then=champion_then,
                now_ms=max(_now_ms(), answer.records[0]["stage_changed_at_ms"] + 1)
                if answer.records else _now_ms(),
                max_challengers=self.settings.max_challengers, probation=live.probation(model),
            )  # fmt: skip
        answer = self._hold_stale(answer, read.rows, champion_then)
        if answer.verdict is None:
            log.warning("%s: %s", model, answer.alerts[-1]["message"])
        else:
            log.info(
                "%s: %s %s the gate: %s",
                model,
                answer.version,
                "passed" if answer.verdict["passed"] else "failed",
                answer.verdict["summary"],
            )
        self.publisher.send_versions(answer.records)
        for record in answer.alerts:
            self._alert(record)
        self.publisher.flush()
        for r in answer.records:
            reg.apply(r)
        detail = (
            answer.alerts[-1]["message"] if answer.verdict is None else answer.verdict["summary"]
        )
        kinds = tuple(a["kind"] for a in answer.alerts)
        return Outcome(trigger["trigger_id"], model, answer.stage, answer.version, detail, kinds)

    def _await(self, model: str, future: Future[Answer]) -> Answer:
        """The answer of ``future`` (computed in the training child), the trigger
        consumer kept alive and the live loop, if it runs, pumped meanwhile; with the live
        loop, a log line says how many outcomes it read while waiting, and at what rate."""
        if self.live is None:
            return keep_alive_until(self.consumer, future)
        pumped = 0

        def meanwhile() -> None:
            nonlocal pumped
            pumped += self._pump()

        t0 = time.monotonic()
        answer = keep_alive_until(self.consumer, future, meanwhile)
        took = time.monotonic() - t0
        rate = pumped / took if took > 0 else 0.0
        log.info("%s: the live loop read %d outcomes in the %.2f s the answer took (%.0f/s)",
                 model, pumped, took, rate)  # fmt: skip
        return answer

    def _hold_stale(
        self, answer: Answer, window: list[dict[str, Any]], champion_then: str | None
    ) -> Answer:
        """No stale answers (:func:`~driftline.core.lifecycle.answer.hold_stale`): a would-be
        champion trained only on data from before the model's latest concept-drift alarm
        enters as a challenger where a live loop decides, else is gated again on the
        outcomes since the alarm or rejected. The alarm: the live loop's detector on the
        champion (it reads every outcome) when it watches the model; else the same
        detector run here over the champion's outcomes of the window and since."""
        if answer.stage != "champion" or answer.trained_until_ms is None or not answer.records:
            return answer
        model = answer.config.name
        live = self.live is not None and self.live.probation(model)
        watched = None if self.live is None else self.live.lives.get(model)
        after: list[dict[str, Any]] = []
        if not live:
            after = self.reader.read(model, start_ms=answer.trained_until_ms + 1).rows
        if watched is not None:
            alarm = watched.latest_alarm_ms
        else:
            alarm = latest_alarm_ms([*window, *after], model, champion_then, answer.config.task)
        held = hold_stale(
            answer, self.follower.registry, alarm_ms=alarm, live=live, post_alarm_rows=after,
            key=self.key, now_ms=max(_now_ms(), answer.records[0]["stage_changed_at_ms"] + 1),
            max_challengers=self.settings.max_challengers, probation=live,
        )  # fmt: skip
        if held is not answer:
            log.info("%s: %s %s: %s", model, answer.version, held.stage,
                     held.records[-1]["stage_reason"])  # fmt: skip
        return held

    def _alert(self, record: Mapping[str, Any]) -> None:
        self.publisher.send("alerts", record["model"], "Alert", record, record["created_at_ms"])

    def close(self) -> None:
        self._pool.close()
        if self.live is not None:
            self.live.close()
        self.consumer.close()
        self.follower.close()
        self.reader.close()
        self.publisher.close()


def main(settings: Settings, metrics_port: int | None = None) -> None:
    """Run the trainer until SIGTERM or SIGINT; Prometheus metrics on ``metrics_port``
    (default ``settings.metrics_port``; 0 serves none)."""
    port, stopped = process.start(settings, metrics_port)
    trainer = Trainer(settings, models_file.load(settings.models_file), live=settings.live)

    def _alert_now(record: Mapping[str, Any]) -> None:
        trainer._alert(record)
        trainer.publisher.flush()

    # SIGHUP reloads the models file between triggers; a broken one is refused, alerted
    reloader = ModelsReloader(settings.models_file, trainer.models, process="trainer",
                              on_change=lambda new: setattr(trainer, "models", new),
                              on_alert=_alert_now)  # fmt: skip
    reloader.install()

    def _should_stop() -> bool:
        reloader.poll()
        return stopped()

    log.info("trainer started on %s (metrics on :%s)", settings.topic("retrain"), port or "-")
    try:
        trainer.run(should_stop=_should_stop)
    except KeyboardInterrupt:
        pass
    finally:
        trainer.close()
