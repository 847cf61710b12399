"""The ``driftline`` command: one entry point, a subcommand per job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from driftline import __version__
from driftline.cli_acls import acls_cmd
from driftline.cli_config import checked_models
from driftline.cli_models import register as register_training_commands
from driftline.cli_ops import register as register_ops_commands
from driftline.cli_schemas import schemas_cmd
from driftline.core.errors import DriftlineError
from driftline.settings import Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="driftline")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Driftline keeps ML models healthy in production on Apache Kafka.

    Settings come from DRIFTLINE_* environment variables (see `driftline settings`).
    """
    ctx.obj = Settings()


@cli.command("settings")
@click.pass_obj
def settings_cmd(settings: Settings) -> None:
    """Print the settings in force (secrets masked)."""
    for name, value in settings.model_dump().items():
        click.echo(f"DRIFTLINE_{name.upper()}={value}")


# -- broker -------------------------------------------------------------------------


@cli.group()
def broker() -> None:
    """The local development broker (Apache Kafka, KRaft, from Maven Central jars)."""


@broker.command("up")
@click.option("--port", default=None, help="Port, or 'auto' for a free one (default 9092).")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=None,
    help="Data and state directory (default .cache/broker).",
)
@click.option(
    "--security",
    is_flag=True,
    help="SASL_SSL (SCRAM-SHA-512, TLS) with ACLs; CA and passwords under the directory.",
)
def broker_up(port: str | None, directory: Path | None, security: bool) -> None:
    """Fetch the jars if needed, start the broker and wait until it serves requests."""
    from driftline import broker as b

    click.echo(b.up(port, directory, security))


@broker.command("down")
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=None)
@click.option("--purge", is_flag=True, help="Also delete the broker's data.")
def broker_down(directory: Path | None, purge: bool) -> None:
    """Stop the broker cleanly (SIGTERM, then SIGKILL after 30 s)."""
    from driftline import broker as b

    b.down(directory, purge)


@broker.command("status")
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=None)
def broker_status(directory: Path | None) -> None:
    """Say whether the broker runs, with its pid and address (exit 3 if stopped)."""
    from driftline import broker as b

    args = ["bash", str(b.script("broker.sh")), "status"]
    if directory is not None:
        args += ["--dir", str(directory)]
    sys.exit(subprocess.run(args, check=False).returncode)


@cli.command(
    "kafka",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def kafka_tool(args: tuple[str, ...]) -> None:
    """Run one of Kafka's own admin tools: driftline kafka topics --list, ...

    TOOL is one of topics, consumer-groups, configs, console-consumer,
    console-producer, broker-api-versions, acls, get-offsets, log-dirs,
    metadata-quorum. Without --bootstrap-server the local broker is used.
    """
    from driftline import broker as b

    cmd = ["bash", str(b.script("kafka-tool.sh")), *args]
    os.execvp(cmd[0], cmd)


# -- worker -------------------------------------------------------------------------


@cli.command("worker")
@click.option("--name", default="worker", help="Worker group name (one consumer group per name).")
@click.option("--web-port", type=int, default=None, help="Status page and /metrics port.")
@click.option("--without-web", is_flag=True, help="Do not open the web server.")
@click.option(
    "--loglevel", default="info", type=click.Choice(["debug", "info", "warning", "error"])
)
@click.pass_obj
def worker_cmd(
    settings: Settings, name: str, web_port: int | None, without_web: bool, loglevel: str
) -> None:
    """Run a worker: validate and score features, join labels, monitor, alert, trigger.

    A broken models file stops it before it starts (exit 2); SIGHUP reloads the file."""
    models = checked_models(settings, "worker")
    from driftline.streams import worker

    if web_port is not None:
        settings = settings.model_copy(update={"worker_web_port": web_port})
    worker.run(settings, name=name, web=not without_web, loglevel=loglevel, models=models)


# -- topics -------------------------------------------------------------------------


@cli.group()
def topics() -> None:
    """Driftline's topics as code."""


@topics.command("apply")
@click.pass_obj
def topics_apply(settings: Settings) -> None:
    """Create missing topics and align configs; safe to run again."""
    from driftline.kafka import admin

    results = admin.apply(settings)
    for r in results:
        click.echo(f"{r.action:<10} {r.name}" + (f"  ({r.detail})" if r.detail else ""))
    if any(r.action == "refused" for r in results):
        raise click.ClickException("some topics differ in ways apply will not change (see above)")


@topics.command("describe")
@click.pass_obj
def topics_describe(settings: Settings) -> None:
    """Show every declared topic against the cluster."""
    from driftline.kafka import admin

    rows = [("topic", "partitions", "replication", "policy", "retention.ms", "state")]
    for d in admin.describe(settings):
        s = d.spec
        parts = (
            f"{s.partitions}"
            if d.actual_partitions in (None, s.partitions)
            else (f"{d.actual_partitions} (declared {s.partitions})")
        )
        repl = (
            f"{s.replication_factor}"
            if d.actual_replication in (None, s.replication_factor)
            else (f"{d.actual_replication} (declared {s.replication_factor})")
        )
        state = (
            "missing"
            if not d.exists
            else (
                "in sync"
                if d.in_sync
                else "differs: "
                + ", ".join(
                    [f"{k} {old}->{new}" for k, (old, new) in d.config_changes.items()]
                    + d.problems()
                )
            )
        )
        rows.append(
            (
                s.name,
                parts,
                repl,
                s.configs.get("cleanup.policy", ""),
                s.configs.get("retention.ms", ""),
                state,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


# -- demo -----------------------------------------------------------------------------


@cli.command("demo")
@click.option(
    "--stream",
    type=click.Choice(["agrawal", "sea"]),
    default="agrawal",
    help="River generator: Agrawal (functions 0,2,5,8) or SEA (variants 0-3).",
)
@click.option("--events", type=int, default=24_000, show_default=True, help="Stream length.")
@click.option(
    "--drift-every",
    type=int,
    default=6_000,
    show_default=True,
    help="Abrupt concept change every N events.",
)
@click.option(
    "--warmup",
    type=int,
    default=2_000,
    show_default=True,
    help="Events the first champion is trained on (not replayed).",
)
@click.option(
    "--label-delay",
    type=int,
    default=500,
    show_default=True,
    help="A label is published this many events after its features.",
)
@click.option("--rate", type=float, default=1_000.0, show_default=True, help="Events per second.")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("reports/demo"),
    show_default=True,
    help="Where the report and logs go.",
)
def demo_cmd(stream: str, events: int, drift_every: int, warmup: int, label_delay: int,
             rate: float, seed: int, out: Path) -> None:  # fmt: skip
    """Close the loop on a drifting stream: drift detected, retrain triggered, a new
    version validated and promoted, accuracy recovering; then write a report."""
    from driftline.demo.run import Options, run

    if warmup >= events or drift_every <= 0 or label_delay < 0 or rate <= 0:
        raise click.BadParameter(
            "need warmup < events, drift-every > 0, label-delay >= 0, rate > 0"
        )
    try:
        run(Options(stream, events, drift_every, warmup, label_delay, rate, seed, out=out))
    except KeyboardInterrupt:
        click.echo("demo interrupted: processes and broker stopped", err=True)
        sys.exit(130)


# -- continuous training: trainer, projector, retrain, models (driftline/cli_models.py) --

register_training_commands(cli)
cli.add_command(schemas_cmd)
register_ops_commands(cli)  # tail, produce, status (driftline/cli_ops.py)
cli.add_command(acls_cmd)  # ACLs of the principals of a secured cluster (driftline/cli_acls.py)


def main() -> None:
    """Console entry point."""
    try:
        cli(standalone_mode=True)
    except DriftlineError as exc:
        click.echo(f"driftline: {exc}", err=True)
        sys.exit(1)
