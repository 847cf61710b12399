"""The local development broker: a thin wrapper over ``infra/kafka/broker.sh``.

The broker scripts live in the source checkout (``infra/kafka``); set
``DRIFTLINE_HOME`` to a checkout when Driftline is installed elsewhere.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from driftline.core.errors import ConfigError, DriftlineError


def home() -> Path:
    """The source checkout that holds ``infra/``."""
    env = os.environ.get("DRIFTLINE_HOME")
    root = Path(env) if env else Path(__file__).resolve().parent.parent
    if not (root / "infra" / "kafka" / "broker.sh").is_file():
        raise ConfigError(
            f"no infra/kafka/broker.sh under {root}: the local broker needs a Driftline "
            "source checkout; set DRIFTLINE_HOME to it, or point DRIFTLINE_BOOTSTRAP_SERVERS "
            "at an existing Kafka cluster"
        )
    return root


def script(name: str) -> Path:
    """Path of an infra/kafka script."""
    return home() / "infra" / "kafka" / name


def run(action: str, *args: str, capture: bool = False) -> str:
    """Run ``broker.sh ACTION ARGS``; returns its stdout when ``capture``."""
    cmd = ["bash", str(script("broker.sh")), action, *args]
    proc = subprocess.run(cmd, text=True, stdout=subprocess.PIPE if capture else None, check=False)
    if proc.returncode not in (0, 3) or (action != "status" and proc.returncode != 0):
        raise DriftlineError(f"broker.sh {action} failed with exit code {proc.returncode}")
    return proc.stdout.strip() if capture and proc.stdout else ""


def up(port: str | None = None, directory: Path | None = None, security: bool = False) -> str:
    """Start (or find running) the local broker; returns its bootstrap address. With
    ``security``, SASL_SSL with SCRAM users and ACLs (docs/broker.md, Security)."""
    args: list[str] = ["--security"] if security else []
    if port is not None:
        args += ["--port", port]
    if directory is not None:
        args += ["--dir", str(directory)]
    out = run("up", *args, capture=True)
    return out.splitlines()[-1] if out else ""


def down(directory: Path | None = None, purge: bool = False) -> None:
    """Stop the local broker cleanly."""
    args: list[str] = []
    if directory is not None:
        args += ["--dir", str(directory)]
    if purge:
        args.append("--purge")
    run("down", *args)
