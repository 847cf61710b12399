"""``driftline report MODEL``: the report of any model, from the topics.

Registered on the ``driftline`` group from :data:`COMMANDS`; the page is built by
:mod:`driftline.demo.model_report`. Kafka clients are imported inside the command.
"""

from __future__ import annotations

from pathlib import Path

import click

from driftline.settings import Settings


@click.command("report")
@click.argument("model")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("report"),
    show_default=True,
    help="Directory for report.html, summary.json and the plot.",
)
@click.pass_obj
def report_cmd(settings: Settings, model: str, out: Path) -> None:
    """Write MODEL's report: its served metric over time by version, promotions,
    incidents and notices, and every version's lineage and gate verdict, read from the
    metrics, alerts and registry topics (as far back as they keep records)."""
    from driftline.demo.model_report import History, write
    from driftline.kafka.helpers import read_records
    from driftline.kafka.registry_follower import read_registry

    def mine(record: dict[str, object]) -> bool:
        return record.get("model") == model

    reg = read_registry(settings)
    versions = reg.versions(model)
    snapshots = read_records(settings, "metrics", "MetricSnapshot", mine)
    alerts = read_records(settings, "alerts", "Alert", mine)
    if not versions and not snapshots:
        raise click.ClickException(f"no version and no metrics of {model} on the topics")
    history = History(model, snapshots, alerts, versions,
                      [c for c in reg.changes if c.model == model])  # fmt: skip
    path = write(out, history)
    click.echo(
        f"{model}: {len(versions)} version(s), {len(snapshots)} metric snapshots, "
        f"{len(alerts)} alerts -> {path}"
    )


COMMANDS: tuple[click.Command, ...] = (report_cmd,)
