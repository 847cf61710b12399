"""``driftline broker``: the local development broker (up, down, status)."""

from __future__ import annotations

import subprocess
import sys

import click

from driftline.settings import Settings

__all__ = ["COMMANDS"]


@click.group("broker")
def broker() -> None:
    """The local development broker (Apache Kafka, KRaft, from Maven Central jars)."""


@broker.command("up")
@click.option("--port", default=None, help="Port, or 'auto' for a free one (default 9092).")
@click.option(
    "--security",
    is_flag=True,
    help="SASL_SSL (SCRAM-SHA-512, TLS) with ACLs; CA and passwords under the directory.",
)
@click.option(
    "--nodes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="3 or more: a cluster of that many KRaft nodes on free ports, replication factor "
    "3, min.insync.replicas 2 (docs/broker.md).",
)
@click.pass_obj
def broker_up(settings: Settings, port: str | None, security: bool, nodes: int) -> None:
    """Fetch the jars if needed, start the broker in DRIFTLINE_BROKER_DIR (default
    ~/.cache/driftline/broker) and wait until it serves requests; print its address.
    Every driftline command then uses it, unless DRIFTLINE_BOOTSTRAP_SERVERS is set.
    With --nodes 3, every node of a cluster; driftline commands then use them all, and
    create Driftline's topics with 3 replicas."""
    from driftline import broker as b

    click.echo(b.up(port, b.directory(settings), security, nodes))


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
    """Say whether the local broker runs, with its pid and address (exit 3 if stopped;
    for a cluster, one line per node and the active controller, exit 3 unless every
    node runs)."""
    from driftline import broker as b

    path = b.directory(ctx.obj)
    script = "cluster.sh" if b.is_cluster(path) else "broker.sh"
    args = ["bash", str(b.script(script)), "status", "--dir", str(path)]
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


COMMANDS: tuple[click.Command, ...] = (broker,)
