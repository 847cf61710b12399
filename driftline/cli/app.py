"""The ``driftline`` command: the root group, its own commands (settings, kafka, worker,
demo) and the one place every other module's commands are added (:data:`GROUPS`)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from driftline import __version__
from driftline.cli import acls, broker, deadletters, models, ops, report, schemas, topics
from driftline.cli.config import checked_models
from driftline.core.errors import DriftlineError
from driftline.demo.synthetic import KINDS as STREAM_KINDS
from driftline.settings import Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="driftline")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Driftline keeps ML models healthy in production on Apache Kafka.

    Settings come from DRIFTLINE_* environment variables (see `driftline settings`).
    Every command talks to DRIFTLINE_BOOTSTRAP_SERVERS when it is set, else to the
    local broker when one runs in DRIFTLINE_BROKER_DIR (`driftline broker up`), else
    to 127.0.0.1:9092.
    """
    from driftline import broker as b

    ctx.obj, ctx.meta["bootstrap_from"] = b.resolve(Settings())


@cli.command("settings")
@click.pass_context
def settings_cmd(ctx: click.Context) -> None:
    """Print the settings in force (secrets masked)."""
    from driftline import broker as b

    settings: Settings = ctx.obj
    for name, value in settings.model_dump().items():
        if name == "broker_dir":
            value = b.directory(settings)
        click.echo(f"DRIFTLINE_{name.upper()}={value}")
    click.echo(f"(bootstrap servers from {ctx.meta['bootstrap_from']})", err=True)


# -- kafka --------------------------------------------------------------------------

_GIVEN = ("--bootstrap-server", "--bootstrap-controller", "--broker-list")
_CONFIGS = ("--command-config", "--consumer.config", "--producer.config", "--admin.config",
            "--config")  # fmt: skip


@cli.command(
    "kafka",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def kafka_tool(ctx: click.Context, args: tuple[str, ...]) -> None:
    """Run one of Kafka's own admin tools: driftline kafka topics --list, ...

    TOOL is one of topics, consumer-groups, configs, console-consumer,
    console-producer, broker-api-versions, acls, get-offsets, log-dirs,
    metadata-quorum, ... (driftline kafka --list). Without --bootstrap-server, the
    tool connects where every driftline command does (see driftline --help), with
    the security of the same DRIFTLINE_* settings (a client config file made for the
    run, removed after it, unless you pass one).
    """
    from driftline import broker as b
    from driftline.kafka.clients import java_properties, properties_text

    settings: Settings = ctx.obj
    cmd = ["bash", str(b.script("kafka-tool.sh")), *args]
    env = dict(os.environ, DRIFTLINE_BROKER_DIR=str(b.directory(settings)))
    names = {a.split("=", 1)[0] for a in args}
    if not args or args[0].startswith("-") or names & {*_GIVEN, "-h", "--help"}:
        os.execvpe(cmd[0], cmd, env)  # help, --list, or the user's own servers
    env["DRIFTLINE_TOOL_BOOTSTRAP"] = settings.bootstrap_servers
    local = ctx.meta["bootstrap_from"].startswith("the local broker")
    admin = b.directory(settings) / "secrets" / "admin.properties"
    if local and admin.exists() and settings.security_protocol == "PLAINTEXT":
        click.echo(f"driftline kafka: the local broker is secured (SASL_SSL): set "
                   f"DRIFTLINE_SECURITY_PROTOCOL and DRIFTLINE_SASL_*, or pass "
                   f"--command-config {admin}", err=True)  # fmt: skip
    props = {} if names & set(_CONFIGS) else java_properties(settings)
    if not props:
        os.execvpe(cmd[0], cmd, env)
    with tempfile.TemporaryDirectory(prefix="driftline-kafka-") as tmp:  # mode 0700
        path = Path(tmp) / "client.properties"
        path.touch(mode=0o600)
        path.write_text(properties_text(props))
        env["DRIFTLINE_TOOL_CONFIG"] = str(path)
        code = subprocess.call(cmd, env=env)
    sys.exit(code)


# -- worker -------------------------------------------------------------------------


@cli.command("worker")
@click.option("--name", default="worker", help="Worker group name (one consumer group per name).")
@click.option("--web-port", type=int, default=None, help="Status page and /metrics port.")
@click.option("--without-web", is_flag=True, help="Do not open the web server.")
@click.option(
    "--loglevel", default="info", type=click.Choice(["debug", "info", "warning", "error"])
)
@click.option(
    "--role", default="all", show_default=True, type=click.Choice(["all", "score", "join"]),
    help="What this process runs: everything, the scorer alone, or the join and monitor "
    "(each role is its own consumer group, scaled by its own processes).",
)  # fmt: skip
@click.option(
    "--processes", type=click.IntRange(min=1), default=1, show_default=True,
    help="Run this many worker processes (one per core): instance ids <id or host>-<i>, "
    "web ports from --web-port up, one data directory each.",
)  # fmt: skip
@click.pass_obj
def worker_cmd(
    settings: Settings, name: str, web_port: int | None, without_web: bool, loglevel: str,
    role: str, processes: int,
) -> None:  # fmt: skip
    """Run a worker: validate and score features, join labels, monitor, alert, trigger.

    A broken models file stops it before it starts (exit 2); SIGHUP reloads the file.
    ``--role score`` and ``--role join`` split the work over processes (docs/scaling.md)."""
    models = checked_models(settings, "worker")
    from driftline.streams import worker

    if web_port is not None:
        settings = settings.model_copy(update={"worker_web_port": web_port})
    if processes > 1:
        from driftline.streams import fanout

        args = ["--name", name, "--loglevel", loglevel, "--role", role]
        sys.exit(fanout.run(settings, processes, args + (["--without-web"] * without_web)))
    worker.run(settings, name=name, web=not without_web, loglevel=loglevel, models=models,
               role=role)  # fmt: skip


# -- demo -----------------------------------------------------------------------------


@cli.command("demo")
@click.option(
    "--stream",
    type=click.Choice(sorted(STREAM_KINDS)),
    default="agrawal",
    help="A stream kind of driftline.demo.synthetic: abrupt (agrawal, sea, led), gradual, "
    "incremental (hyperplane, rbf) or stationary; each with its own model.",
)
@click.option("--events", type=int, default=24_000, show_default=True, help="Stream length.")
@click.option(
    "--drift-every",
    type=int,
    default=6_000,
    show_default=True,
    help="Concept change every N events (abrupt and gradual kinds).",
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
    "--nodes",
    type=click.Choice(["1", "3"]),
    default="1",
    show_default=True,
    help="Kafka nodes: 3 runs the demo on a cluster of three, at replication factor 3.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("reports/demo"),
    show_default=True,
    help="Where the report and logs go.",
)
def demo_cmd(stream: str, events: int, drift_every: int, warmup: int, label_delay: int,
             rate: float, seed: int, nodes: str, out: Path) -> None:  # fmt: skip
    """Close the loop on a drifting stream: drift detected, retrain triggered, a new
    version validated and promoted, accuracy recovering; then write a report."""
    from driftline.demo.run import Options, run

    if warmup >= events or drift_every <= 0 or label_delay < 0 or rate <= 0:
        raise click.BadParameter(
            "need warmup < events, drift-every > 0, label-delay >= 0, rate > 0"
        )
    try:
        run(Options(stream, events, drift_every, warmup, label_delay, rate, seed, out=out,
                    nodes=int(nodes)))  # fmt: skip
    except KeyboardInterrupt:
        click.echo("demo interrupted: processes and broker stopped", err=True)
        sys.exit(130)


# -- every other command: one module per group, each listing its commands in COMMANDS --

GROUPS = (
    broker,  # the local development broker
    topics,  # topics as code
    models,  # trainer, projector, retrain, models ...
    ops,  # tail, produce, status
    deadletters,  # replay dead letters to their source topics
    schemas,  # published records and fingerprints
    acls,  # ACLs of the principals of a secured cluster
    report,  # the report of any model, from the topics
)
for _module in GROUPS:
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    """Console entry point."""
    try:
        cli(standalone_mode=True)
    except DriftlineError as exc:
        click.echo(f"driftline: {exc}", err=True)
        sys.exit(1)
