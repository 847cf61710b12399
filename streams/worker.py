"""Run a Driftline worker process: ``driftline worker``."""

from __future__ import annotations

import asyncio
import logging

import faust

from driftline.core.model.config import ModelsConfig
from driftline.core.watch import models_file
from driftline.settings import Settings
from driftline.streams.app import Worker, create_worker, since_start

log = logging.getLogger("driftline.worker")


class _QuietWorker(faust.Worker):
    """Faust's worker, with the root logger put back to the chosen level once started
    (its progress spinner leaves it at DEBUG, which cost ~15% throughput).

    Its services (the worker's background: registry follower and loops) start before
    the app and stop before it, as they did when they were the app's own services; the
    ready line comes once the app (web server included) has started too."""

    quiet_level = logging.WARNING
    driftline: Worker | None = None

    async def on_first_start(self) -> None:
        await super().on_first_start()
        logging.getLogger().setLevel(self.quiet_level)

    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        if self.driftline is not None:
            log.info("driftline worker ready (role %s): %s (%.1f s after the process started)",
                     self.driftline.role, self.driftline.doing, since_start())  # fmt: skip

    async def _stop_children(self) -> None:
        for service in self.services:  # the loops first: they may still send
            await service.stop()
        await super()._stop_children()


def run(
    settings: Settings,
    *,
    name: str = "worker",
    web: bool = True,
    loglevel: str = "info",
    models: ModelsConfig | None = None,
    role: str = "all",
) -> None:
    """Build the worker and run it until SIGTERM/SIGINT (SIGHUP reloads the models file).
    ``models``: the models file already read (default: read and check it now); ``role``:
    what it runs (:data:`driftline.streams.app.ROLES`)."""
    if models is None:
        models = models_file.load(settings.models_file)
    worker = create_worker(settings, models, name=name, role=role)
    level = getattr(logging, loglevel.upper(), logging.INFO)
    _QuietWorker.quiet_level = level
    loop = asyncio.new_event_loop()
    background = [] if worker.background is None else [worker.background(loop=loop)]
    w = _QuietWorker(
        worker.app,
        *background,  # faust.Worker starts its services before the app
        loglevel=loglevel,
        quiet=True,
        redirect_stdouts=False,
        loop=loop,
    )
    w.driftline = worker
    if not web:
        worker.app.conf.web_enabled = False
    log.info("driftline worker %s starting (role %s, topics %s*)", name, role,
             settings.topic_prefix)  # fmt: skip
    w.execute_from_commandline()
