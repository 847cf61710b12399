"""The harness's own single-node broker (infra/kafka/broker.sh), so it can kill it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from driftline import broker


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Broker:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.bootstrap = ""

    def up(self) -> str:
        port = self.bootstrap.rsplit(":", 1)[1] if self.bootstrap else "auto"
        got = broker.up(port, self.dir)
        if self.bootstrap and got != self.bootstrap:
            raise RuntimeError(f"broker came back on {got}, not {self.bootstrap}")
        self.bootstrap = got
        return got

    def pid(self) -> int:
        return int((self.dir / "broker.pid").read_text().strip())

    def kill(self) -> None:
        """SIGKILL the broker's JVM and wait until it is gone."""
        pid = self.pid()
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.05)

    def down(self, purge: bool) -> None:
        broker.down(self.dir, purge=purge)
