"""The Driftline worker: one Faust app with the scorer, join and monitor.

* scorer: a confluent-kafka loop on its own thread (stateless; see streams/scorer.py)
* registry follower: a thread that keeps champion and challenger versions loaded
* join: a Faust agent with a changelogged table (streams/join.py)
* monitor: fed in process by the join, ticked by a timer (streams/monitor.py)
* web: /metrics, the status page and /status.json (streams/web.py)

Run it with ``driftline worker`` (or :func:`run`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import faust
import mode
from confluent_kafka import Producer

from driftline.core.codec import Codec, default_codec
from driftline.core.headers import build as record_headers
from driftline.core.headers import for_confluent
from driftline.core.joiner import Joiner
from driftline.core.modelconfig import ModelsConfig
from driftline.core.monitor import Emit
from driftline.core.scoring import Scoring
from driftline.kafka.clients import faust_broker_url, faust_credentials, producer_config
from driftline.settings import Settings
from driftline.streams import join, monitor, web
from driftline.streams.registry import RegistryFollower
from driftline.streams.scorer import ScorerLoop

log = logging.getLogger(__name__)

ALERT = "io.driftline.Alert"
THREAD_DIED = 70
"""Exit code of a worker whose scorer or registry thread died (EX_SOFTWARE)."""


@dataclass
class Worker:
    """Everything one worker process runs, built by :func:`create_worker`."""

    settings: Settings
    models: ModelsConfig
    app: faust.App
    codec: Codec
    follower: RegistryFollower
    scorer: ScorerLoop
    monitors: monitor.Monitors
    join: join.JoinAgent
    recent: monitor.Recent = field(default_factory=monitor.Recent)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)


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


def install_streams(
    app: faust.App,
    settings: Settings,
    codec: Codec,
    joiner: Joiner,
    monitors: monitor.Monitors,
    on_emit: Callable[[Emit], None] | None = None,
) -> join.JoinAgent:
    """The Faust side of a worker: the join (table, agent, expiry sweep) feeding the
    monitor (tick timer). Creates no Kafka client: the agent tests use it as it is."""
    observe = monitor.install(app, codec, monitors, settings.topic, settings.monitor_interval_s,
                              on_emit=on_emit)  # fmt: skip
    return join.install(
        app, joiner, settings.topic("predictions"), settings.topic("labels"),
        settings.data_partitions, observe,
    )  # fmt: skip


def create_worker(settings: Settings, models: ModelsConfig, *, name: str = "worker") -> Worker:
    """Build the worker: app, agents, scorer and registry follower (nothing started)."""
    codec = default_codec()
    app_id = f"{settings.topic_prefix}{name}".replace(".", "-")
    app = create_app(settings, app_id)
    alert_producer = Producer(producer_config(settings, "worker-alerts"))

    def send_alert(alert: dict[str, Any]) -> None:
        alert_producer.produce(
            settings.topic("alerts"),
            codec.encode(ALERT, alert),
            alert["model"].encode(),
            headers=for_confluent(record_headers(ALERT, alert["created_at_ms"], None)),
        )
        alert_producer.poll(0)

    monitors = monitor.Monitors(models)
    follower = RegistryFollower(settings, codec, on_alert=send_alert,
                                on_change=monitors.versions.append)  # fmt: skip

    def known(model: str) -> bool:
        return model in models or follower.versions(model)[0] is not None

    scoring = Scoring(codec, follower.versions, known)
    scorer = ScorerLoop(settings, scoring, codec, group_id=f"{app_id}-scorer")

    def task_of(model: str) -> str | None:
        config = models.get(model)
        if config is not None:
            return config.task
        record = follower.registry.champion(model)
        return None if record is None else str(record["task"])

    def ttl_of(model: str) -> int:
        config = models.get(model)
        return config.join_ttl_ms if config is not None else settings.join_ttl_ms

    joiner = Joiner(codec, task_of, ttl_of, settings.topic("predictions"))
    recent = monitor.Recent()
    joined = install_streams(app, settings, codec, joiner, monitors, on_emit=recent.add)
    scorer.on_dead = monitors.dead_inbox.append
    worker = Worker(settings, models, app, codec, follower, scorer, monitors, joined, recent)
    # Our own web server replaces Faust's legacy one (see streams/web.py).
    app.web_server(web.server(worker, settings.worker_web_bind, settings.worker_web_port))

    class Background(mode.Service):
        """Starts the registry follower, then the scorer, on threads; stops them."""

        async def on_start(self) -> None:
            t = threading.Thread(target=follower.run, args=(worker.stop,), name="registry",
                                 daemon=True)  # fmt: skip
            t.start()
            worker.threads.append(t)
            await self.loop.run_in_executor(None, follower.ready.wait, 60)
            s = threading.Thread(target=scorer.run, args=(worker.stop,), name="scorer",
                                 daemon=True)  # fmt: skip
            s.start()
            worker.threads.append(s)
            log.info("driftline worker ready: scoring %s", settings.topic("features"))

        @mode.Service.task
        async def _watch_threads(self) -> None:
            """A scorer or registry thread that dies leaves a worker that looks alive and
            scores nothing: exit instead, so the orchestrator restarts the process (the
            scorer's uncommitted batch is read again: at-least-once)."""
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

    app.service(Background)
    return worker
