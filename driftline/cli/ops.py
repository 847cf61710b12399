"""Operator commands: ``driftline tail``, ``driftline produce``, ``driftline status``.

Registered on the ``driftline`` group from :data:`COMMANDS`. Text and JSON come from
:mod:`driftline.cli.ops_format`, rows of files from :mod:`driftline.replay` (both
pure), the cluster summary from :mod:`driftline.kafka.status`. Kafka clients are imported inside the
commands so ``driftline --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from driftline.cli.ops_format import status_lines, tail_line, tail_record, topic_name
from driftline.core.errors import DriftlineError
from driftline.settings import Settings

if TYPE_CHECKING:
    from confluent_kafka import Consumer


# -- tail ----------------------------------------------------------------------------


@click.command("tail")
@click.argument("topic")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest record kept.")
@click.option("--max", "max_records", type=click.IntRange(min=1), help="Stop after N records.")
@click.option("--model", help="Only records of this model.")
@click.option("--headers", "with_headers", is_flag=True, help="Print each record's headers too.")
@click.option(
    "--idle",
    type=click.FloatRange(min=0, min_open=True),
    help="Stop after this many seconds without a record (default: follow until Ctrl-C).",
)
@click.pass_obj
def tail_cmd(
    settings: Settings,
    topic: str,
    from_beginning: bool,
    max_records: int | None,
    model: str | None,
    with_headers: bool,
    idle: float | None,
) -> None:
    """Print TOPIC's records decoded, one JSON line each (topic, partition, offset, key,
    schema, value); dead letters show their stage, reason and source first.

    TOPIC is a Driftline topic (features, predictions, labels, outcomes, metrics,
    alerts, retrain, registry, deadletter, predictions.shadow), which gets the topic
    prefix, or any full topic name. Reads every partition without joining a
    consumer group and commits nothing. Starts at the end (only new records) unless
    --from-beginning.
    """
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition

    from driftline.core.wire.codec import default_codec
    from driftline.kafka.helpers import reader

    name = topic_name(topic, settings.topic_prefix)
    codec = default_codec()
    consumer = reader(settings, "tail")
    try:
        partitions = _partitions(consumer, name)
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([TopicPartition(name, p, start) for p in partitions])
        printed = 0
        last = time.monotonic()
        while max_records is None or printed < max_records:
            msgs = consumer.consume(500, 0.25)
            if msgs:
                last = time.monotonic()
            elif idle is not None and time.monotonic() - last >= idle:
                break
            for msg in msgs:
                if msg.error() is not None:
                    continue
                record = _decode(codec, msg, with_headers)
                if model is not None and (record.get("value") or {}).get("model") != model:
                    continue
                click.echo(tail_line(record))
                printed += 1
                if max_records is not None and printed >= max_records:
                    break
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


def _partitions(consumer: Consumer, name: str) -> list[int]:
    md = consumer.list_topics(name, timeout=15)
    t = md.topics.get(name)
    if t is None or t.error is not None or not t.partitions:
        raise click.ClickException(f"no topic {name}")
    return sorted(t.partitions)


def _decode(codec: Any, msg: Any, with_headers: bool) -> dict[str, Any]:
    ts_type, ts = msg.timestamp()
    raw = msg.value()
    where: dict[str, Any] = {
        "topic": msg.topic(),
        "partition": msg.partition(),
        "offset": msg.offset(),
        "timestamp_ms": ts if ts_type else None,
        "key": msg.key(),
        "headers": (msg.headers() or []) if with_headers else None,
    }
    if raw is None:
        return tail_record(**where, schema=None, value=None)
    try:
        decoded = codec.decode(raw)
    except DriftlineError as exc:
        return tail_record(**where, schema=None, value=None, error=str(exc), raw=raw)
    return tail_record(**where, schema=decoded.name, value=decoded.value)


# -- produce -------------------------------------------------------------------------


@click.command("produce")
@click.argument("topic", type=click.Choice(["features", "labels"]))
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", required=True, help="The model the records are for.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    help="Rows per second (default: as fast as the broker takes them).",
)
@click.option("--label-column", default="label", show_default=True, help="The label column.")
@click.option(
    "--segment",
    "segments",
    multiple=True,
    help="A feature column that is also a segment attribute (repeat).",
)
@click.option(
    "--with-labels", is_flag=True, help="features: also send each row's label right after it."
)
@click.option("--id-column", default="event_id", show_default=True,
              help="The event id column, never a feature.")  # fmt: skip
@click.option("--drop", multiple=True, help="A column to ignore (repeat).")
@click.option("--time-column", default=None,
              help="The event (label) time column, epoch ms [default: event_time_ms, "
              "label_time_ms].")  # fmt: skip
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N rows.")
@click.pass_obj
def produce_cmd(
    settings: Settings,
    topic: str,
    file: Path,
    model: str,
    rate: float | None,
    label_column: str,
    segments: tuple[str, ...],
    with_labels: bool,
    id_column: str,
    drop: tuple[str, ...],
    time_column: str | None,
    limit: int | None,
) -> None:
    """Replay FILE (.csv or .parquet) to TOPIC (features or labels) for MODEL.

    features: each row is one FeatureEvent; every column is a feature (typed as pandas
    reads it; an empty cell is null) except the --id-column (event_id; generated when
    absent), --drop columns,
    event_time_ms (now when absent), the label column and segment.NAME columns (the
    segment attribute NAME). A --segment column is a feature and a segment attribute.
    labels: each row is one Label; needs the id column and the label column, and takes
    label_time_ms when present. Records go through Driftline's client producer
    (murmur2 partitioning, delivery confirmed); progress goes to stderr.
    """
    from driftline.client import Producer
    from driftline.replay import Pacer, feature_events, labels, plan, read_frame

    frame = read_frame(file)
    if limit is not None:
        frame = frame.head(limit)
    cols = plan(
        list(frame.columns), topic, label=label_column, segments=segments,
        with_labels=with_labels, id_column=id_column, drop=drop, time_column=time_column,
    )  # fmt: skip
    failed: list[str] = []

    def on_delivery(delivery: Any) -> None:
        if delivery.error is not None:
            failed.append(str(delivery.error))

    rows: Iterator[dict[str, Any]] = (
        feature_events(frame, cols) if topic == "features" else labels(frame, cols)
    )
    pacer = Pacer(rate)
    sent = 0
    t0 = time.monotonic()
    with (
        Producer(settings, app="produce") as producer,
        click.progressbar(
            length=len(frame), label=f"{file.name} -> {settings.topic(topic)}",
            file=sys.stderr, show_pos=True, show_percent=True,
        ) as bar,
    ):  # fmt: skip
        for i, row in enumerate(rows):
            pacer.tick()
            try:
                if topic == "features":
                    label = row.pop("label", None)
                    d = producer.send_features(model, row.pop("features"), **row,
                                               on_delivery=on_delivery)  # fmt: skip
                    sent += 1
                    if with_labels:
                        producer.send_label(model, str(d.event_id), label, on_delivery=on_delivery)
                        sent += 1
                else:
                    producer.send_label(model, row.pop("event_id"), row.pop("label"), **row,
                                        on_delivery=on_delivery)  # fmt: skip
                    sent += 1
            except DriftlineError as exc:
                raise click.ClickException(f"{file.name} row {i + 1}: {exc}") from exc
            bar.update(1)
    seconds = max(time.monotonic() - t0, 1e-9)
    if failed:
        raise click.ClickException(f"{len(failed)} of {sent} records not delivered: {failed[0]}")
    click.echo(
        f"produced {sent:,} records for {model} from {file.name} in {seconds:.1f} s "
        f"({sent / seconds:,.0f}/s)"
    )


# -- status --------------------------------------------------------------------------


@click.command("status")
@click.option("--alerts", "n_alerts", default=5, show_default=True, help="Last alerts to show.")
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON document.")
@click.pass_obj
def status_cmd(settings: Settings, n_alerts: int, as_json: bool) -> None:
    """Summarize Driftline on the cluster: topics (partitions, end offsets), consumer
    groups reading them and their lag, models with versions and stages (registry
    topic), and the last alerts."""
    from driftline.kafka.status import collect

    try:
        doc = collect(settings, n_alerts)
    except DriftlineError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo("\n".join(status_lines(doc)))


COMMANDS: tuple[click.Command, ...] = (tail_cmd, produce_cmd, status_cmd)
