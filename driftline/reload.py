"""Reload a running process's models file on SIGHUP, keeping the last good one.

``kill -HUP <pid>`` makes a worker or trainer read ``DRIFTLINE_MODELS_FILE`` again. The
file is checked whole (:func:`driftline.core.watch.models_file.load`); a good one replaces
the configuration in force (one INFO line names the models whose configuration changed),
a broken or unreadable one is refused: every problem is logged, a ``config_rejected``
alert is published per model concerned, and the last good configuration stays in force.

The signal handler only sets a flag (:meth:`ModelsReloader.request`); the process applies
the reload where it is safe to (:meth:`ModelsReloader.poll` from its loop, or
:meth:`ModelsReloader.reload` from an event loop's own signal handler).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any

from driftline.core.errors import ConfigError
from driftline.core.model.config import ModelsConfig
from driftline.core.model.config_problems import ModelsFileError, Problem
from driftline.core.watch import models_file

log = logging.getLogger("driftline.reload")


@dataclass(eq=False)
class ModelsReloader:
    """The models configuration in force in one process, and its reload."""

    path: Path | None
    current: ModelsConfig
    _: KW_ONLY
    process: str
    on_change: Callable[[ModelsConfig], None] | None = None
    on_alert: Callable[[dict[str, Any]], None] | None = None
    requested: threading.Event = field(default_factory=threading.Event, init=False)
    reloads: int = field(default=0, init=False)
    rejected: int = field(default=0, init=False)

    def install(self) -> None:
        """Make SIGHUP request a reload (call from the main thread)."""
        signal.signal(signal.SIGHUP, self.request)

    def request(self, *_: Any) -> None:
        """Ask for a reload (safe from a signal handler)."""
        self.requested.set()

    def poll(self) -> bool:
        """Reload if one was requested; whether the file was applied."""
        if not self.requested.is_set():
            return False
        self.requested.clear()
        return self.reload()

    def reload(self) -> bool:
        """Read and check the file; apply it when good (True), else keep the one in force,
        log every problem and publish the alerts (False)."""
        if self.path is None:
            log.warning("%s: reload asked, but no models file is set (DRIFTLINE_MODELS_FILE)",
                        self.process)  # fmt: skip
            return False
        try:
            new = models_file.load(self.path)
        except ModelsFileError as exc:
            self._refuse(exc)
            return False
        except ConfigError as exc:  # unreadable
            self._refuse(ModelsFileError([Problem("(file)", str(exc))], str(self.path)))
            return False
        old = self.current
        changed = sorted(
            name
            for name in {*old.models, *new.models}
            if old.get(name) != new.get(name)
        )  # fmt: skip
        self.current = new
        self.reloads += 1
        log.info("%s: reloaded models file %s: %d model(s), changed: %s", self.process,
                 self.path, len(new.models), ", ".join(changed) or "none")  # fmt: skip
        if self.on_change is not None:
            self.on_change(new)
        return True

    def _refuse(self, exc: ModelsFileError) -> None:
        self.rejected += 1
        log.error("%s: refused models file %s (%d error(s)); the last good configuration "
                  "stays in force", self.process, self.path, len(exc.problems))  # fmt: skip
        for p in exc.problems:
            log.error("%s:   %s", self.process, p)
        if self.on_alert is None:
            return
        now = int(time.time() * 1000)
        for alert in models_file.rejected_alerts(
            exc, self.current.models, process=self.process, now_ms=now
        ):
            self.on_alert(alert)
