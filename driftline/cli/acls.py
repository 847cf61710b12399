"""``driftline acls``: show or apply the ACLs of Driftline's principals
(:mod:`driftline.kafka.acls`)."""

from __future__ import annotations

import click

from driftline.cli.text import table
from driftline.settings import Settings


@click.command("acls")
@click.option("--apply", "do_apply", is_flag=True, help="Create the missing ACLs (as an admin).")
@click.option("--prune", is_flag=True, help="With --apply: delete the principals' other ACLs.")
@click.option("--scorer", default="scorer", show_default=True, help="The worker's user.")
@click.option("--trainer", default="trainer", show_default=True, help="The trainer's user.")
@click.option("--app", default="app", show_default=True, help="The upstream app's user.")
@click.option("--app-group", default=None, help="The app's consumer-group prefix [--app].")
@click.option(
    "--worker-name",
    default="worker",
    show_default=True,
    help="Prefix of the worker names (driftline worker --name) the scorer may run.",
)
@click.pass_obj
def acls_cmd(
    settings: Settings,
    do_apply: bool,
    prune: bool,
    scorer: str,
    trainer: str,
    app: str,
    app_group: str | None,
    worker_name: str,
) -> None:
    """Print the ACLs Driftline's principals need under these settings (topic prefix,
    client id); with --apply, create them on the cluster, connecting with the
    settings' credentials (a super user such as admin)."""
    from driftline.kafka import acls

    names = acls.Principals(scorer, trainer, app, app_group)
    grants = acls.declare(settings, names, worker_name)
    if not do_apply:
        for line in table([(p, r, ops) for p, ops, r in acls.table(grants)]):
            click.echo(line)
        return
    result = acls.apply(settings, grants, prune=prune)
    click.echo(
        f"{len(result.created)} created, {len(result.deleted)} deleted, "
        f"{result.unchanged} unchanged"
    )


COMMANDS: tuple[click.Command, ...] = (acls_cmd,)
