"""``driftline deadletters replay``: put dead-lettered records back on their source topics.

Every dead letter (schemas/dead_letter.v1.avsc) names the record it refused: source
topic, partition, offset, key and headers, and carries its raw bytes. Once the cause is
fixed (a model configured, a schema published, a TTL raised), replaying sends each such
record through the pipeline again, as it first came. Which dead letters match is pure
(:func:`matches`, :func:`replay_line`); Kafka clients are imported inside the command so
``driftline --help`` stays fast.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import click

from driftline.cli_ops_format import topic_name
from driftline.core.errors import DriftlineError
from driftline.core.wire.deadletter import replay_refusal
from driftline.settings import Settings

if TYPE_CHECKING:
    from confluent_kafka import Consumer

__all__ = ["deadletters", "matches", "replay_line"]

DEAD_LETTER = "io.driftline.DeadLetter"


def matches(
    record: dict[str, Any],
    *,
    reasons: Sequence[str] = (),
    stages: Sequence[str] = (),
    model: str | None = None,
    source_topics: Sequence[str] = (),
    since_ms: int | None = None,
) -> bool:
    """Whether the dead letter ``record`` passes every filter given (an empty one passes).

    >>> d = {"reason": "orphan_label", "stage": "join", "model": "churn",
    ...      "source_topic": "driftline.labels", "failed_at_ms": 5}
    >>> matches(d, reasons=["orphan_label", "late_label"], model="churn", since_ms=5)
    True
    >>> matches(d, stages=["validate"]), matches(d, source_topics=["driftline.features"])
    (False, False)
    """
    return (
        (not reasons or record["reason"] in reasons)
        and (not stages or record["stage"] in stages)
        and (model is None or record.get("model") == model)
        and (not source_topics or record["source_topic"] in source_topics)
        and (since_ms is None or record["failed_at_ms"] >= since_ms)
    )


def replay_line(record: dict[str, Any], refusal: str | None = None) -> str:
    """One line about a dead letter: reason, stage, where it came from, its key.

    >>> replay_line({"reason": "orphan_label", "stage": "join", "source_topic": "d.labels",
    ...              "source_partition": 2, "source_offset": 41, "source_key": b"e-1"})
    'orphan_label  join  d.labels[2]@41  key e-1'
    """
    key = record.get("source_key")
    shown = "(none)" if key is None else key.decode("utf-8", "backslashreplace")
    where = f"{record['source_topic']}[{record['source_partition']}]@{record['source_offset']}"
    line = f"{record['reason']}  {record['stage']}  {where}  key {shown}"
    return line if refusal is None else f"{line}  NOT REPLAYABLE: {refusal}"


def _dead_letters(consumer: Consumer, topic: str) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(partition, offset, record) of every dead letter ``topic`` holds now (read
    committed), in partition and offset order per partition."""
    from confluent_kafka import KafkaError, TopicPartition

    from driftline.core.wire.codec import default_codec

    codec = default_codec()
    md = consumer.list_topics(topic, timeout=15).topics.get(topic)
    if md is None or md.error is not None or not md.partitions:
        raise click.ClickException(f"no topic {topic}")
    ends = {}
    for p in sorted(md.partitions):
        ends[p] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15)[1]
    todo = {p for p, end in ends.items() if end > 0}
    consumer.assign([TopicPartition(topic, p, 0) for p in sorted(todo)])
    while todo:
        for msg in consumer.consume(500, 1.0):
            p = msg.partition() or 0
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    todo.discard(p)
                continue
            offset = msg.offset() or 0
            if p not in todo or offset >= ends[p]:
                todo.discard(p)
                continue
            try:
                yield p, offset, codec.decode(msg.value() or b"", expect=DEAD_LETTER).value
            except DriftlineError as exc:
                click.echo(f"skipped {topic}[{p}]@{offset}: not a dead letter ({exc})", err=True)


@click.group("deadletters")
def deadletters() -> None:
    """The dead-letter topic: records the pipeline refused, with why and where from."""


@deadletters.command("replay")
@click.option(
    "--reason",
    "reasons",
    multiple=True,
    help="Only dead letters with this reason code (repeat for several).",
)
@click.option(
    "--stage",
    "stages",
    multiple=True,
    help="Only those refused at this stage: decode, validate, score, join (repeat).",
)
@click.option("--model", help="Only those of this model.")
@click.option("--source-topic", "source_topics", multiple=True,
              help="Only those read from this topic (features, predictions, labels or a "
                   "full name; repeat).")  # fmt: skip
@click.option(
    "--since",
    "since_ms",
    type=int,
    help="Only those refused at or after this time (ms since the epoch).",
)
@click.option("--limit", type=click.IntRange(min=1), help="Replay at most N records.")
@click.option(
    "--dry-run", is_flag=True, help="List what would be replayed (one line each); produce nothing."
)
@click.pass_obj
def replay_cmd(
    settings: Settings,
    reasons: tuple[str, ...],
    stages: tuple[str, ...],
    model: str | None,
    source_topics: tuple[str, ...],
    since_ms: int | None,
    limit: int | None,
    dry_run: bool,
) -> None:
    """Re-produce dead-lettered records to the topics they came from, unchanged.

    Reads the deadletter topic (read_committed) up to its end when the command starts
    and keeps the dead letters that match every filter given. For each, it produces
    the refused record's raw bytes to its source topic with its source key and headers,
    byte for byte. A keyed record is partitioned by its key (murmur2, as every
    Driftline producer), so it lands on its source partition while the partition count
    is unchanged; a record without a key goes to its source partition. A dead letter
    whose key, headers or raw bytes were cut to fit it is listed and not replayed (the
    command then exits with 1).

    The records go through the pipeline again: fix what refused them first, or they
    are refused again. Replaying twice produces them twice: narrow it with --since,
    --reason and the other filters, and look with --dry-run first.

    \b
    driftline deadletters replay --reason orphan_label --reason late_label --dry-run
    driftline deadletters replay --stage validate --model churn --since 1765000000000
    """
    from confluent_kafka import KafkaError, Message, Producer

    from driftline.consumers.kafka_io import reader
    from driftline.kafka.clients import producer_config

    wanted = [topic_name(t, settings.topic_prefix) for t in source_topics]
    topic = settings.topic("deadletter")
    consumer = reader(settings, "deadletters-replay", **{"enable.partition.eof": True})
    producer = None if dry_run else Producer(producer_config(settings, "deadletters-replay"))
    failed: list[str] = []

    def delivered(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failed.append(str(err))

    done: Counter[str] = Counter()
    refused: list[str] = []
    try:
        for _, _, record in _dead_letters(consumer, topic):
            if not matches(record, reasons=reasons, stages=stages, model=model,
                           source_topics=wanted, since_ms=since_ms):  # fmt: skip
                continue
            if limit is not None and sum(done.values()) >= limit:
                break
            refusal = replay_refusal(record)
            if refusal is not None:
                refused.append(replay_line(record, refusal))
                continue
            if producer is None:
                click.echo(replay_line(record))
            else:
                key = record["source_key"]
                headers = [(h["key"], h["value"]) for h in record["headers"]]
                where = {} if key is not None else {"partition": record["source_partition"]}
                producer.produce(record["source_topic"], record["raw"], key, headers=headers,
                                 on_delivery=delivered,
                                 **where)  # fmt: skip
                producer.poll(0)
            done[record["reason"]] += 1
        if producer is not None and producer.flush(60) != 0:
            failed.append("records still queued after 60 s")
    finally:
        consumer.close()
    for line in refused:
        click.echo(line, err=True)
    counts = ", ".join(f"{reason} {n}" for reason, n in sorted(done.items())) or "none"
    verb = "would replay" if dry_run else "replayed"
    click.echo(f"{verb} {sum(done.values())} records ({counts}); {len(refused)} not replayable")
    if failed:
        raise click.ClickException(f"{len(failed)} records not delivered: {failed[0]}")
    if refused:
        raise SystemExit(1)
