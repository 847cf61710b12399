"""The local development broker: a thin wrapper over ``infra/kafka/broker.sh``, and
which broker the ``driftline`` command talks to.

The broker scripts live in the source checkout (``infra/kafka``); set
``DRIFTLINE_HOME`` to a checkout when Driftline is installed elsewhere.

One rule for every command (:func:`resolve`): the bootstrap servers are
``DRIFTLINE_BOOTSTRAP_SERVERS`` when it is set; else the local broker when one runs in
the broker directory (``DRIFTLINE_BROKER_DIR``, default ~/.cache/driftline/broker,
:func:`directory`); else the settings' default, 127.0.0.1:9092. Security comes from the
same settings (``DRIFTLINE_SECURITY_PROTOCOL``, ``DRIFTLINE_SASL_*``, ...).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from driftline.core.errors import ConfigError, DriftlineError
from driftline.settings import Settings


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


def directory(settings: Settings) -> Path:
    """The local broker's directory: ``DRIFTLINE_BROKER_DIR``, else
    ``$XDG_CACHE_HOME/driftline/broker`` (``~/.cache/driftline/broker``); the same rule as
    infra/kafka/common.sh. Outside the checkout, one per machine like the port 9092."""
    if settings.broker_dir is not None:
        return settings.broker_dir
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "driftline" / "broker"


def running(path: Path) -> str | None:
    """``127.0.0.1:PORT`` of the broker that runs from ``path``, or None (none recorded
    there, or its process is gone)."""
    try:
        pid = int((path / "broker.pid").read_text().strip())
        port = int((path / "broker.port").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return f"127.0.0.1:{port}" if b"kafka.Kafka" in cmdline else None


def resolve(settings: Settings) -> tuple[Settings, str]:
    """``settings`` with the bootstrap servers every command uses (module docstring),
    and where they came from, in words."""
    if "bootstrap_servers" in settings.model_fields_set:
        return settings, "DRIFTLINE_BOOTSTRAP_SERVERS"
    path = directory(settings)
    local = running(path)
    if local is None:
        return settings, "the default (no DRIFTLINE_BOOTSTRAP_SERVERS, no local broker runs)"
    return settings.model_copy(update={"bootstrap_servers": local}), f"the local broker in {path}"


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
