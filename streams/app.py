"""The Driftline worker: one Faust app with the scorer, join and monitor.

A worker runs a *role* (``driftline worker --role``): ``all`` (the default) runs every
piece below in one process; ``score`` runs the registry follower and the scorer; ``join``
runs the registry follower, the join and the monitor. Each loop has its own consumer
group (``<app>-scorer``, ``<app>-join``) and its own transactions, so the scorer and the
join scale apart, each by its partitions and processes, with the same exactly-once
guarantee in every layout. A ``score`` process's monitor judges only the skew rate (the
scorer's refusals), which needs the scorer's batches; everything else is judged where the
join runs.

* scorer: a transactional confluent-kafka loop on its own thread (streams/scorer.py)
* registry follower: a thread that keeps champion and challenger versions loaded
* join: a transactional confluent-kafka loop on its own thread, with a changelogged
  store (streams/join_loop.py)
* monitor: on the event loop, fed the join's committed steps, ticked by a Faust timer
  (streams/monitors.py); its incidents rebuilt from the alerts topic before the join
  starts (streams/incidents.py)
* web: /metrics, the status page and /status.json (streams/web.py), whose last known
  state is read back from the metrics, alerts and retrain topics at start-up
  (streams/restore.py)
* SIGHUP: reload the models file (driftline/reload.py); a broken one is refused with a
  ``config_rejected`` alert and the last good configuration stays in force

Faust is the frame: services, timers, the web server and the worker's lifecycle. Both
data paths are confluent-kafka loops that own their Kafka transactions
(driftline/kafka/txn.py): the measured reasons are in docs/architecture.md.

Run it with ``driftline worker`` (or :func:`run`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
import mode
from confluent_kafka import Producer

from driftline.core.errors import ValidationError
from driftline.core.join.joiner import Joiner, Step
from driftline.core.model.config import ModelsConfig
from driftline.core.model.scoring import Scoring
from driftline.core.watch.incidents import open_incidents
from driftline.core.watch.monitor import Emit
from driftline.core.watch.profile import label_spec
from driftline.core.wire.codec import Codec, default_codec
from driftline.core.wire.envelope import LabelSpec
from driftline.core.wire.headers import build as record_headers
from driftline.core.wire.headers import for_confluent
from driftline.kafka.clients import faust_broker_url, faust_credentials, producer_config
from driftline.reload import ModelsReloader
from driftline.settings import Settings
from driftline.streams import telemetry as m
from driftline.streams import web
from driftline.streams.incidents import read_alerts
from driftline.streams.join_loop import JoinLoop
from driftline.streams.joinstore import open_store
from driftline.streams.lineups import Lineups
from driftline.streams.monitors import INCIDENTS, Monitors, Recent, install, log_alert
from driftline.streams.restore import read_last_known, restore
from driftline.streams.scorer import ScorerLoop

log = logging.getLogger(__name__)

ALERT = "io.driftline.Alert"
THREAD_DIED = 70
"""Exit code of a worker whose scorer, join or registry thread died (EX_SOFTWARE)."""
MONITOR_BACKLOG = 200
"""Committed join batches the monitor may lag behind before the join waits for it."""
ROLES = ("all", "score", "join")
"""What a worker process runs: every loop, the scorer alone, or the join and monitor."""


@dataclass
class Worker:
    """Everything one worker process runs, built by :func:`create_worker`."""

    settings: Settings
    models: ModelsConfig
    app: faust.App
    codec: Codec
    follower: Lineups
    scorer: ScorerLoop | None
    monitors: Monitors
    join: JoinLoop | None
    recent: Recent = field(default_factory=Recent)
    reloader: ModelsReloader | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    role: str = "all"
    background: type[mode.Service] | None = None
    """The service that starts the registry follower and the loops: run it before the
    app (streams/worker.py), so that they do not wait for Faust's own group."""

    @property
    def doing(self) -> str:
        """What this worker does, for the ready line."""
        features, labels = self.settings.topic("features"), self.settings.topic("labels")
        return {"all": f"scoring {features}, joining, monitoring", "score": f"scoring {features}",
                "join": f"joining {labels}, monitoring"}[self.role]  # fmt: skip


def create_app(settings: Settings, app_id: str) -> faust.App:
    """The worker's Faust app (no Kafka client connects before it starts)."""
    extra: dict[str, Any] = {}
    if settings.data_dir is not None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        extra["datadir"] = str(settings.data_dir)
    return faust.App(
        app_id,
        broker=faust_broker_url(settings),
        broker_credentials=faust_credentials(settings),
        store=settings.table_store,
        key_serializer="raw",
        value_serializer="raw",
        autodiscover=False,
        topic_partitions=settings.data_partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        broker_commit_interval=1.0,
        producer_linger=0.01,
        producer_max_batch_size=1_000_000,
        producer_partitioner=None,
        stream_wait_empty=False,
        web_port=settings.worker_web_port,
        web_host=settings.worker_web_bind,
        web_bind=settings.worker_web_bind,
        web_in_thread=False,
        **extra,
    )


def since_start() -> float:
    """Wall seconds since this process started (Linux's /proc; elsewhere since this
    module was imported), for the start-up lines of the log (docs/scaling.md)."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORTED


_IMPORTED = time.monotonic()
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Collect cyclic garbage less often, and never scan what start-up built again.

    The loops allocate several short-lived objects per record, nearly all freed by
    reference counting, yet each 700 allocations trigger a young-generation collection
    and every ~10 of those an older one that walks the join store's entries. Frozen
    start-up objects and a young generation of 50,000 cut the join loop's CPU per record
    by 10-20% (``docs/benchmarks-history.md``, section 1)."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def create_worker(
    settings: Settings, models: ModelsConfig, *, name: str = "worker", role: str = "all"
) -> Worker:
    """Build the worker of ``role`` (one of :data:`ROLES`): app, registry follower, and
    the scorer, the join and monitor, or all of them (nothing started)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    scores, joins = role in ("all", "score"), role in ("all", "join")
    codec = default_codec()
    app_id = settings.group(name)
    app = create_app(settings, app_id)
    alert_producer = Producer(producer_config(settings, "worker-alerts"))

    def send_record(topic: str, key: bytes, value: bytes, hdrs: list[tuple[str, bytes]]) -> None:
        while True:
            try:
                alert_producer.produce(topic, value, key, headers=for_confluent(hdrs))
                break
            except BufferError:  # local queue full (broker away): let it drain a little
                alert_producer.poll(0.05)
        alert_producer.poll(0)

    def send_alert(alert: dict[str, Any]) -> None:
        log_alert(alert)
        send_record(settings.topic("alerts"), alert["model"].encode(),
                    codec.encode(ALERT, alert),
                    record_headers(ALERT, alert["created_at_ms"], None))  # fmt: skip

    monitors = Monitors(models)
    follower = Lineups(settings, codec, on_alert=send_alert,
                       on_change=monitors.versions.append)  # fmt: skip
    # the models file in force: replaced whole by a SIGHUP reload (driftline/reload.py)
    reloader = ModelsReloader(settings.models_file, models, process="worker",
                              on_alert=send_alert)  # fmt: skip

    def known(model: str) -> bool:
        if follower.retired(model):  # dead-lettered with its own reason, not unknown_model
            raise ValidationError(
                "model_retired",
                f"model {model!r} is retired: its events are not scored"
                f" (driftline models unretire {model})",
            )
        return model in reloader.current or follower.lineup(model)[0] is not None

    scoring = Scoring(codec, follower.lineup, known)
    scorer = ScorerLoop(settings, scoring, codec, group_id=f"{app_id}-scorer") if scores else None
    labels: dict[tuple[str, str], LabelSpec] = {}

    def task_of(model: str) -> str | LabelSpec | None:
        """What a label of ``model`` is checked against: the task, label types and
        classes of its champion (the registry's, cached per version; for a retired model,
        the version retired from the champion slot, so labels of its earlier predictions
        still join), else the models file's task; None for an unknown model."""
        record = follower.registry.champion(model) or follower.retired_champion(model)
        if record is not None:
            key = (model, str(record["version"]))
            spec = labels.get(key)
            if spec is None:
                if len(labels) > 1_000:
                    labels.clear()
                spec = labels[key] = label_spec(record)
            return spec
        config = reloader.current.get(model)
        return None if config is None else config.task

    def ttl_of(model: str) -> int:
        config = reloader.current.get(model)
        return config.join_ttl_ms if config is not None else settings.join_ttl_ms

    joiner = Joiner(codec, task_of, ttl_of, settings.topic("predictions"), settings.topic("labels"))
    recent = Recent()
    observe = install(app, codec, monitors, settings.topic, settings.monitor_interval_s,
                      send_record, on_emit=recent.add, rates_only=not joins)  # fmt: skip
    committed: deque[tuple[list[Step], int]] = deque()
    stop = threading.Event()

    def on_committed(steps: list[Step], now: int) -> None:  # on the join's thread
        waited = time.monotonic()
        while len(committed) >= MONITOR_BACKLOG and not stop.is_set():
            time.sleep(0.005)
            if time.monotonic() - waited > 10:
                log.warning("join: waiting for the monitor (%d batches behind)", len(committed))
                waited = time.monotonic()
        committed.append((steps, now))

    data_dir = settings.data_dir or Path(f"{app_id}-data")
    joined = None
    if joins:
        joined = JoinLoop(settings, joiner, open_store(settings.table_store, data_dir / "join"),
                          group_id=f"{app_id}-join", on_committed=on_committed)  # fmt: skip
    if scorer is not None:
        scorer.on_batch = monitors.on_scorer_batch
    worker = Worker(settings, models, app, codec, follower, scorer, monitors, joined, recent,
                    reloader, stop=stop, role=role)  # fmt: skip

    def on_models(new: ModelsConfig) -> None:  # on the event loop
        worker.models = new
        monitors.reconfigure(new)

    reloader.on_change = on_models
    # Our own web server replaces Faust's legacy one (see streams/web.py).
    app.web_server(web.server(worker, settings.worker_web_bind, settings.worker_web_port))

    class Background(mode.Service):
        """Run before the Faust app (streams/worker.py), not as its service: starts the
        registry follower, then the scorer and join loops, on threads; restores the
        status page and the open incidents, feeds the monitor the join's committed
        steps, ends the process when a thread dies; stops the threads."""

        async def on_start(self) -> None:
            self.add_future(self._restore())  # the status page's last known state
            # SIGHUP reloads the models file, on the event loop (the monitor's thread)
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reloader.reload)
            t = threading.Thread(target=follower.run, args=(worker.stop,), name="registry",
                                 daemon=True)  # fmt: skip
            t.start()
            worker.threads.append(t)
            await self.loop.run_in_executor(None, follower.ready.wait, 60)
            await self._restore_incidents()
            tune_gc()
            loops = [("scorer", scorer), ("join", joined)]
            for name, loop in [(n, lp) for n, lp in loops if lp is not None]:
                s = threading.Thread(target=loop.run, args=(worker.stop,), name=name,
                                     daemon=True)  # fmt: skip
                s.start()
                worker.threads.append(s)
            log.info("driftline worker: loops started (role %s) %.1f s after the process "
                     "started, %.2f s of CPU", role, since_start(),
                     time.process_time())  # fmt: skip

        async def _restore(self) -> None:
            """Read the metrics, alerts and retrain topics' tails back into the status
            page's memory (streams/restore.py); a failure only leaves the page empty."""
            try:
                tails = await self.loop.run_in_executor(None, read_last_known, settings, codec)
                restore(recent, tails)
            except Exception:
                log.exception("could not restore the status page from the topics")

        async def _restore_incidents(self) -> None:
            """The incidents still open on the alerts topic, into the monitors (on the
            event loop, before the join feeds them), the gauge and the status page."""
            try:
                records = await self.loop.run_in_executor(
                    None, read_alerts, settings, codec, f"{app_id}-incidents"
                )
            except Exception:  # no history is no reason not to serve
                log.exception("incidents: could not read %s; none rebuilt",
                              settings.topic("alerts"))  # fmt: skip
                return
            restored = monitors.restore(open_incidents(records))
            for r in restored:
                INCIDENTS.update(r)
                recent.add(Emit("alerts", r["model"], r))
            log.info("incidents: %d still open on %s (of %d records), rebuilt%s",
                     len(restored), settings.topic("alerts"), len(records),
                     "".join(f"; {r['incident_key']} {r['severity']} since "
                             f"{r['opened_at_ms']}" for r in restored))  # fmt: skip

        @mode.Service.task
        async def _feed_monitor(self) -> None:
            """The join's committed steps, to the monitor, in commit order."""
            while not self.should_stop:
                if not committed:
                    await self.sleep(0.02)
                    continue
                steps, now = committed.popleft()
                try:
                    await observe(steps, now)
                except Exception:  # a monitor failure is logged and counted, never fatal
                    log.exception("the monitor failed on a batch of %d steps", len(steps))
                    m.MONITOR_ERRORS.inc(len(steps))

        @mode.Service.task
        async def _watch_threads(self) -> None:
            """A scorer or registry thread that dies leaves a worker that looks alive and
            scores nothing: exit instead, so the orchestrator restarts the process (the
            batch in flight of each loop is aborted and read again)."""
            while not self.should_stop:
                await self.sleep(1.0)
                dead = [t.name for t in worker.threads if not t.is_alive()]
                if dead and not worker.stop.is_set():
                    log.critical("driftline worker: thread(s) %s died; exiting (code %d)",
                                 ", ".join(dead), THREAD_DIED)  # fmt: skip
                    logging.shutdown()
                    os._exit(THREAD_DIED)

        async def on_stop(self) -> None:
            worker.stop.set()
            for t in worker.threads:
                await self.loop.run_in_executor(None, t.join, 30)
            alert_producer.flush(10)

    # Not app.service(): Faust starts those only once its own consumer has joined the
    # app's group (a 1 s wait for tables, then the join, which after a SIGKILL waits out
    # the dead member's session), and the loops do not use that group.
    worker.background = Background
    return worker
