"""``driftline worker --processes N``: one command, N worker processes of one host.

A worker process runs one Python interpreter, so its loops share one GIL and one core.
``--processes N`` starts N children (``driftline worker`` with the same options), each
with its own ``DRIFTLINE_INSTANCE_ID`` (``<instance or host>-<i>``: stable, so a
restarted child fences its predecessor's open transaction at once), web port (the
given one plus i) and data directory; they share the consumer groups, and so the
partitions, like any workers of one name. The parent forwards SIGTERM, SIGINT and SIGHUP
to every child; when one child exits on its own, it stops the others and exits with that
child's code, so that an orchestrator restarts the whole set (a crash is not hidden).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from driftline.procs import env_for
from driftline.settings import Settings


def child_settings(settings: Settings, i: int) -> Settings:
    """The settings of child ``i``: its instance id, web port and data directory."""
    base = settings.instance_id or socket.gethostname()
    data = settings.data_dir if settings.data_dir is not None else Path.cwd()
    return settings.model_copy(update={
        "instance_id": f"{base}-{i}",
        "worker_web_port": settings.worker_web_port + i,
        "data_dir": data / f"process-{i}",
    })  # fmt: skip


def run(settings: Settings, n: int, args: list[str]) -> int:
    """Run ``driftline worker ARGS`` in ``n`` children until they stop; returns the exit
    code (0 after a forwarded SIGTERM/SIGINT, else the first child's that exited)."""
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "driftline", "worker", *args],
            env=env_for(child_settings(settings, i)),
        )
        for i in range(n)
    ]
    stopping = False

    def forward(sig: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = stopping or sig != signal.SIGHUP
        for c in children:
            if c.poll() is None:
                c.send_signal(sig)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    code = 0
    while any(c.poll() is None for c in children):
        exited = [c for c in children if c.poll() is not None]
        if exited and not stopping:  # one died on its own: stop the set
            code = exited[0].returncode or 1
            stopping = True
            for c in children:
                if c.poll() is None:
                    c.terminate()
        time.sleep(0.2)
    if not stopping:
        code = next((c.returncode for c in children if c.returncode), 0)
    return code if code >= 0 else 128 - code
