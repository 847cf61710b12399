"""``driftline topics``: Driftline's topics as code (apply, describe)."""

from __future__ import annotations

import click

from driftline.cli.text import table
from driftline.settings import Settings

__all__ = ["COMMANDS"]


@click.group("topics")
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
    for line in table(rows):
        click.echo(line)


COMMANDS: tuple[click.Command, ...] = (topics,)
