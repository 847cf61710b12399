"""The ``driftline`` command: one entry point, a subcommand per job."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from driftline import __version__
from driftline.cli_acls import acls_cmd
from driftline.cli_config import checked_models
from driftline.cli_deadletters import deadletters
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


# -- broker -------------------------------------------------------------------------


@cli.group()
def broker() -> None:
    """The local development broker (Apache Kafka, KRaft, from Maven Central jars)."""


@broker.command("up")
@click.option("--port", default=None, help="Port, or 'auto' for a free one (default 9092).")
@click.option(
    "--security",
    is_flag=True,
    help="SASL_SSL (SCRAM-SHA-512, TLS) with ACLs; CA and passwords under the directory.",
)
@click.pass_obj
def broker_up(settings: Settings, port: str | None, security: bool) -> None:
    """Fetch the jars if needed, start the broker in DRIFTLINE_BROKER_DIR (default
    ~/.cache/driftline/broker) and wait until it serves requests; print its address.
    Every driftline command then uses it, unless DRIFTLINE_BOOTSTRAP_SERVERS is set."""
    from driftline import broker as b

    click.echo(b.up(port, b.directory(settings), security))


@broker.command("down")
@click.option("--purge", is_flag=True, help="Also delete the broker's data.")
@click.pass_context
def broker_down(ctx: click.Context, purge: bool) -> None:
    """Stop the local broker of DRIFTLINE_BROKER_DIR cleanly (SIGTERM, then SIGKILL
    after 30 s). A cluster of DRIFTLINE_BOOTSTRAP_SERVERS is not Driftline's to stop."""
    from driftline import broker as b

    settings: Settings = ctx.obj
    path = b.directory(settings)
    if b.running(path) is None and not purge:
        click.echo(f"no local broker runs in {path}: nothing to stop"
                   + _cluster_note(ctx), err=True)  # fmt: skip
        return
    b.down(path, purge)


@broker.command("status")
@click.pass_context
def broker_status(ctx: click.Context) -> None:
    """Say whether the local broker runs, with its pid and address (exit 3 if stopped)."""
    from driftline import broker as b

    path = b.directory(ctx.obj)
    args = ["bash", str(b.script("broker.sh")), "status", "--dir", str(path)]
    code = subprocess.run(args, check=False).returncode
    if code != 0:
        click.echo(f"(no local broker runs in {path}){_cluster_note(ctx)}", err=True)
    sys.exit(code)


def _cluster_note(ctx: click.Context) -> str:
    settings: Settings = ctx.obj
    if ctx.meta.get("bootstrap_from") != "DRIFTLINE_BOOTSTRAP_SERVERS":
        return ""
    return (f"; driftline commands use DRIFTLINE_BOOTSTRAP_SERVERS="
            f"{settings.bootstrap_servers}, which `driftline broker` does not manage")  # fmt: skip


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
cli.add_command(deadletters)  # replay dead letters to their source topics (cli_deadletters.py)


def main() -> None:
    """Console entry point."""
    try:
        cli(standalone_mode=True)
    except DriftlineError as exc:
        click.echo(f"driftline: {exc}", err=True)
        sys.exit(1)
