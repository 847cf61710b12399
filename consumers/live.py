"""The trainer's live loop: every outcome, as it arrives, to its model's LiveModel.

The decisions are :class:`driftline.core.lifecycle.live.LiveModel`'s (the online learner,
promotion and rollback on live paired evidence, the champion's concept drift); this
module reads and publishes:

* an ``assign()`` consumer (no group, ``read_committed``) reads every partition of the
  outcomes topic, from where the online learners' checkpoints stand (the offsets their
  state already holds: after a restart each outcome is learnt once into the published
  state) or, with none, from the end;
* :meth:`LiveLoop.pump` hands each outcome to its model's LiveModel, then asks each for
  what to publish (a checkpoint, a decision's registry records and its alert) against the
  registry as the topic holds it now (the trainer's follower, caught up first), publishes
  it, waits for delivery and applies it; records that cannot be delivered make the
  LiveModel drop its decision and gather evidence again. A checkpoint falls due within a
  batch too (a loop catching up on a backlog reads up to ``batch`` outcomes at once): it
  is published at the outcome it fell due at, so the served state is never more than a
  checkpoint's cadence behind the outcomes read.

The trainer calls :meth:`LiveLoop.pump` in its main thread, between triggers and while a
trigger's answer is computed in the trainer's training child process
(:mod:`driftline.consumers.train_pool`), so the live loop keeps its own core meanwhile;
the answer's stages are derived again on the registry as it stands when it comes back.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import TopicPartition
from prometheus_client import Counter, Gauge

from driftline.core.errors import CodecError, DriftlineError
from driftline.core.lifecycle.live import LiveModel
from driftline.core.lifecycle.online import Store
from driftline.core.lifecycle.registry import CHECKPOINT
from driftline.core.model.config import ModelsConfig
from driftline.core.wire.codec import default_codec
from driftline.kafka.helpers import Offsets, Publisher, reader, take_batch
from driftline.kafka.registry_follower import RegistryFollower
from driftline.settings import Settings

log = logging.getLogger("driftline.trainer.live")

OUTCOMES = Counter("driftline_live_outcomes_total", "Outcomes the live loop read.", ["model"])
PUBLISHED = Counter(
    "driftline_live_records_total",
    "Registry records the live loop published, by kind (checkpoint, promote, rollback, "
    "end_probation, enter).",
    ["model", "kind"],
)
REFUSED = Counter(
    "driftline_live_refused_total",
    "Live steps whose records could not be published (the decision is dropped).",
    ["model"],
)
LAG = Gauge("driftline_live_lag", "Outcomes on the topic the live loop has not read yet.")


def _now_ms() -> int:
    return int(time.time() * 1000)


class LiveLoop:
    """Feed the outcomes topic to one LiveModel per model (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        models: ModelsConfig,
        follower: RegistryFollower,
        publisher: Publisher,
        *,
        key: bytes,
        store: Store | None = None,
        code: str = "",
        clock_ms: Callable[[], int] = _now_ms,
        registry_every_s: float = 0.5,
        report_every_s: float = 10.0,
        start_wait_s: float = 60.0,
    ) -> None:
        self.settings = settings
        self.follower = follower
        self.publisher = publisher
        self.key = key
        self.store = store
        self.code = code
        self.clock_ms = clock_ms
        self.registry_every_s = registry_every_s
        self.start_wait_s = start_wait_s
        self.topic = settings.topic("outcomes")
        self.codec = default_codec()
        self.consumer = reader(settings, "outcomes", **{"isolation.level": "read_committed"})
        self.offsets = Offsets(settings)
        self.lives: dict[str, LiveModel] = {}
        self.models = models
        self.undecodable = 0
        self._registry_due = 0.0
        self._started = False
        self._next: dict[int, int] = {}
        """Partition to the next offset the consumer delivers."""
        self._replay: dict[int, int] = {}
        """Partition to the offset up to which outcomes are read again (a learner
        resumed behind the consumer, :meth:`_rewind`)."""
        self.report_every_s = report_every_s
        self._report_due = time.monotonic() + report_every_s

    # -- set-up -----------------------------------------------------------------------

    @property
    def models(self) -> ModelsConfig:
        return self._models

    @models.setter
    def models(self, models: ModelsConfig) -> None:
        """A new models file (SIGHUP): a model gone stops, a new one starts; a changed
        configuration applies to the next learner and the next decision."""
        self._models = models
        host = socket.gethostname()
        lives = {}
        for cfg in models:
            old = getattr(self, "lives", {}).get(cfg.name)
            if old is not None and old.config == cfg:
                lives[cfg.name] = old
                continue
            lives[cfg.name] = LiveModel(
                cfg, key=self.key, host=host, code=self.code,
                inline_max_bytes=self.settings.artifact_inline_max_bytes, store=self.store,
            )  # fmt: skip
            if old is not None and old.learner is not None:
                lives[cfg.name].learner = old.learner  # keeps learning where it stood
        self.lives = lives
        self._registry_due = 0.0

    def start(self) -> None:
        """Catch up with the registry, resume the learners, assign the outcomes topic at
        the learners' positions (else at its end). The registry is read to its end
        first (waiting up to ``start_wait_s`` while, e.g., the broker restarts): a learner
        resumed from a partial registry, or one started with a name it already holds,
        would learn the outcomes again or over another's state."""
        deadline = time.monotonic() + self.start_wait_s
        while True:  # the learners only see the registry once it is whole (or given up)
            self.follower.catch_up(idle_s=1.0)
            if self.follower.complete or time.monotonic() >= deadline:
                break
        if not self.follower.complete:
            log.warning("live loop starts on a registry read short of its end after %.0f s",
                        self.start_wait_s)  # fmt: skip
        self._refresh(force=True)
        parts = self.offsets.partitions(self.topic)
        starts: dict[int, int] = {}
        for live in self.lives.values():
            for (_, p), off in live.positions.items():
                starts[p] = min(starts.get(p, off), off)
        if len(starts) < len(parts):  # the end, resolved now: what arrives next is read
            ends = self.offsets.query([(self.topic, p) for p in parts], "latest")
            starts = {p: starts.get(p, ends[(self.topic, p)]) for p in parts}
        self._next = dict(starts)
        for live in self.lives.values():
            live.take_resumed()  # the starts above hold them
        self.consumer.assign([TopicPartition(self.topic, p, starts[p]) for p in parts])
        self._started = True
        log.info(
            "live loop on %s for %s, from %s", self.topic, ", ".join(sorted(self.lives)) or "-",
            starts,
        )  # fmt: skip

    # -- the loop ---------------------------------------------------------------------

    def pump(self, timeout_s: float = 0.1, batch: int = 2_000, decide: bool = True) -> int:
        """Read what arrived (waiting up to ``timeout_s``), feed it, publish what the
        models ask for (with ``decide`` false, checkpoints only: no stage changes, as
        while a trigger is answered). Returns the number of outcomes read."""
        if not self._started:
            self.start()
        msgs = take_batch(self.consumer, batch, timeout_s)  # what arrived, not a full batch
        n = 0
        for msg in msgs:
            if msg.error() is not None:
                continue
            try:
                outcome = self.codec.decode(msg.value() or b"", expect="Outcome").value
            except CodecError as exc:
                self.undecodable += 1
                log.error("outcomes %s[%s]@%s: %s", msg.topic(), msg.partition(), msg.offset(),
                          exc)  # fmt: skip
                continue
            p, off = msg.partition() or 0, msg.offset() or 0
            self._next[p] = off + 1
            live = self.lives.get(outcome["model"])
            if live is None:
                continue
            if off < self._replay.get(p, -1):  # read again for a resumed learner alone
                live.on_outcome(outcome, (msg.topic() or "", p, off), replay=True)
                continue
            n += 1
            OUTCOMES.labels(outcome["model"]).inc()
            live.on_outcome(outcome, (msg.topic() or "", p, off))
            if live.checkpoint_due(self.clock_ms()):  # mid-batch: a backlog keeps the cadence
                self._step(live, decide)
        self._refresh(force=False)
        for live in self.lives.values():
            self._step(live, decide)
        self._rewind()
        if time.monotonic() >= self._report_due:
            self._report_due = time.monotonic() + self.report_every_s
            for line in self.report():
                log.info("%s", line)
        return n

    def _refresh(self, force: bool) -> None:
        """Catch up with the registry topic (at most every ``registry_every_s``) and hand
        each LiveModel its model's state."""
        now = time.monotonic()
        if not force and now < self._registry_due:
            return
        self._registry_due = now + self.registry_every_s
        self.follower.catch_up(idle_s=1.0)
        reg, now_ms = self.follower.registry, self.clock_ms()
        for live in self.lives.values():
            try:
                live.on_registry(reg, now_ms)
            except DriftlineError as exc:  # an unreadable online checkpoint: say so, go on
                log.error("%s: live state not resumed: %s", live.config.name, exc)
        if self._started:
            self._lag()

    def _rewind(self) -> None:
        """Read again from where a learner resumed since the last call stands, if the
        consumer is past it (the registry held a newer state only after the start, or a
        models file brought a learner back): the learner skips nothing, and the outcomes
        read again feed it alone (``replay``)."""
        back: dict[int, int] = {}
        for live in self.lives.values():
            for (topic, p), off in live.take_resumed().items():
                if topic == self.topic and off < self._next.get(p, off):
                    back[p] = min(back.get(p, off), off)
        if not back:
            return
        for p, off in back.items():
            self._replay[p] = max(self._replay.get(p, -1), self._next[p])
            self._next[p] = off
        self.consumer.assign([TopicPartition(self.topic, p, o) for p, o in self._next.items()])
        log.warning("live loop reads %s again from %s for a learner resumed behind it",
                    self.topic, back)  # fmt: skip

    def _lag(self) -> None:
        try:
            assigned = self.consumer.assignment()
            positions = self.consumer.position(assigned)
            ends = self.offsets.query([(tp.topic, tp.partition) for tp in assigned], "latest")
        except Exception:  # lag is a metric: never a reason to stop
            return
        LAG.set(
            sum(
                max(0, ends.get((tp.topic, tp.partition), 0) - tp.offset)
                for tp in positions
                if tp.offset >= 0
            )
        )

    def _step(self, live: LiveModel, decide: bool) -> None:
        reg = self.follower.registry
        out = live.step(reg, self.clock_ms(), decide=decide)
        if not out.records and not out.alerts:
            return
        model = live.config.name
        try:
            self.publisher.send_versions(out.records)
            for a in out.alerts:
                self.publisher.send("alerts", a["model"], "Alert", a, a["created_at_ms"])
            self.publisher.flush()
        except DriftlineError as exc:
            REFUSED.labels(model).inc()
            live.refused()
            log.error("%s: live records not published (%s); the decision is dropped", model, exc)
            return
        for r in out.records:
            reg.apply(r)
        for r in out.records:
            kind = "enter" if out.decision is None else out.decision.action
            PUBLISHED.labels(model, "checkpoint" if r["stage"] == CHECKPOINT else kind).inc()
        if out.decision is not None:
            d = out.decision
            log.info("%s: live %s of %s (replacing %s): %s", model, d.action, d.version,
                     d.replaces, d.reason)  # fmt: skip
        elif any(r["stage"] == "challenger" for r in out.records):
            log.info("%s: online learner %s enters as challenger", model,
                     out.records[-1]["version"])  # fmt: skip
        live.on_registry(reg, self.clock_ms())

    def probation(self, model: str) -> bool:
        """Whether a champion ``model`` replaces should stay on probation (a live loop
        decides its end)."""
        live = self.lives.get(model)
        return live is not None and live.config.live.enabled

    def report(self) -> list[str]:
        """One line per model: its learner and the evidence of each challenger against
        the champion (challenger right where the champion was wrong : the reverse)."""
        lines = []
        for name, live in sorted(self.lives.items()):
            p = live.promoter
            tests = ", ".join(
                f"{v} {t.b}:{t.c} of {t.pairs} (log LR {t.log_lr():.1f})"
                for v, t in sorted(p.tests.items())
            )
            learner = live.learner
            lines.append(
                f"live {name}: champion {p.champion}; "
                + (f"learner {learner.version} {learner.learned} rows; " if learner else "")
                + (f"evidence {tests}" if tests else "no challenger")
                + (f"; probation {p.probation}" if p.probation else "")
            )
        return lines

    def state(self) -> Mapping[str, Any]:
        """Per model: the learner, its rows learnt, the promoter's tests (for logs)."""
        return {
            name: {
                "learner": None if live.learner is None else live.learner.version,
                "learned": 0 if live.learner is None else live.learner.learned,
                "alarms": live.alarms,
            }
            for name, live in self.lives.items()
        }

    def close(self) -> None:
        self.consumer.close()
