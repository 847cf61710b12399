"""``driftline report MODEL``: the report of any model, from the topics.

Registered on the ``driftline`` group from :data:`COMMANDS`; the page is built by
:mod:`driftline.demo.model_report`. Kafka clients are imported inside the command.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

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
    the drifting features (their drift statistic over time, their training distribution
    against their last 5,000 values), incidents and notices, and every version's lineage
    and gate verdict, read from the metrics, alerts, registry and features topics (as far
    back as they keep records)."""
    from driftline.demo.drift_panel import CURRENT
    from driftline.demo.model_report import History, write
    from driftline.kafka.helpers import read_records
    from driftline.kafka.registry_follower import read_registry

    def mine(record: dict[str, object]) -> bool:
        return record.get("model") == model

    recent: deque[dict[str, Any]] = deque(maxlen=CURRENT)

    def remember(record: dict[str, Any]) -> bool:
        if record.get("model") == model:
            recent.append(record.get("features") or {})
        return False  # kept in ``recent`` only: the last CURRENT, not the whole topic

    reg = read_registry(settings)
    versions = reg.versions(model)
    snapshots = read_records(settings, "metrics", "MetricSnapshot", mine)
    alerts = read_records(settings, "alerts", "Alert", mine)
    if not versions and not snapshots:
        raise click.ClickException(f"no version and no metrics of {model} on the topics")
    read_records(settings, "features", "FeatureEvent", remember)
    history = History(model, snapshots, alerts, versions,
                      [c for c in reg.changes if c.model == model], list(recent))  # fmt: skip
    path = write(out, history)
    click.echo(
        f"{model}: {len(versions)} version(s), {len(snapshots)} metric snapshots, "
        f"{len(alerts)} alerts -> {path}"
    )


COMMANDS: tuple[click.Command, ...] = (report_cmd,)
