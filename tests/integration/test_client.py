"""The client library against the real broker: produce, read back, positions, commits."""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka import Producer as KafkaProducer

from driftline.client import (
    Alert,
    FeatureEvent,
    Label,
    ModelVersion,
    Prediction,
    Producer,
    SchemaMismatchError,
    Subscriber,
    UndecodableMessageError,
)
from driftline.core.wire import headers
from driftline.core.wire.codec import encode
from driftline.kafka import admin
from driftline.kafka.clients import consumer_config, producer_config
from driftline.settings import Settings
from tests.integration.clienthelpers import java_partition, nothing_more, take
from tests.unit.core.examples import EXAMPLES, known


@pytest.fixture
def topics(settings: Settings) -> Settings:
    admin.apply(settings)
    return settings


def alert(i: int, model: str = "churn") -> Alert:
    return Alert.from_dict(EXAMPLES["Alert"](alert_id=f"a{i}", model=model))


def prediction(i: int, model: str) -> Prediction:
    return Prediction.from_dict(EXAMPLES["Prediction"](event_id=f"{model}-{i}", model=model))


def high_watermarks(settings: Settings, topic: str, partitions: int) -> int:
    """Sum of the partitions' end offsets. Right after a topic is created the broker can
    answer NOT_LEADER for a moment: that (retriable) answer is asked again, briefly."""
    c = Consumer(consumer_config(settings, "probe", "probe"))
    deadline = time.monotonic() + 20
    try:
        while True:
            try:
                return sum(
                    c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    for p in range(partitions)
                )
            except KafkaException as exc:
                err = exc.args[0]
                transient = err.retriable() or err.code() in (
                    KafkaError.NOT_LEADER_FOR_PARTITION,
                    KafkaError.LEADER_NOT_AVAILABLE,
                    KafkaError.UNKNOWN_TOPIC_OR_PART,
                )
                if not transient or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        c.close()


def test_features_and_labels_come_back_decoded_keyed_and_co_partitioned(
    topics: Settings,
) -> None:
    s = topics
    with Producer(s, app="shop") as producer:
        features = [
            producer.send_features(
                "churn",
                {"age": 30 + i, "plan": "family", "score": i / 7, "vip": i % 2 == 0, "x": None},
                event_time_ms=1_700_000_000_000 + i,
                segment={"region": "eu"},
                trace_id=f"{i:032x}",
            )
            for i in range(30)
        ]
        feature_reports = {d.event_id: d.wait(30) for d in features}
        labels = [
            producer.send_label("churn", known(d.event_id), i % 3 == 0, trace_id=f"{i:032x}")
            for i, d in enumerate(features)
        ]
    label_reports = {d.event_id: d.report for d in labels}  # the with block flushed them

    with Subscriber(FeatureEvent, s, app="check", start="earliest") as sub:
        got_features = take(sub, 30)
    with Subscriber(Label, s, app="check", start="earliest") as sub:
        got_labels = take(sub, 30)

    for got in got_features:
        event = got.record
        i = event.features["age"] - 30  # type: ignore[operator]
        assert got.key == event.event_id
        report = feature_reports[event.event_id]
        assert (got.partition, got.offset) == (report.partition, report.offset)
        assert got.partition == java_partition(event.event_id, s.data_partitions)
        assert event.features == {
            "age": 30 + i, "plan": "family", "score": i / 7, "vip": i % 2 == 0, "x": None
        }  # fmt: skip
        assert event.segment == {"region": "eu"}
        assert got.headers[headers.EVENT_TIME] == str(1_700_000_000_000 + i)
        assert got.headers[headers.SCHEMA] == FeatureEvent.SCHEMA
        assert got.headers[headers.CONTENT_TYPE] == headers.AVRO_SINGLE_OBJECT
        assert got.headers[headers.TRACE_ID] == f"{i:032x}"
        assert got.writer_version == 2  # FeatureEvent v2, the current version
    for got_label in got_labels:
        assert got_label.key == got_label.record.event_id
        label_report = label_reports[got_label.record.event_id]
        assert label_report is not None and got_label.partition == label_report.partition
        # a label lands on the partition of its features: the join stays local
        assert got_label.partition == feature_reports[got_label.record.event_id].partition
    assert {g.record.event_id for g in got_labels} == set(feature_reports)


def test_a_bad_record_is_refused_and_nothing_reaches_the_topic(topics: Settings) -> None:
    s = topics
    with Producer(s, app="shop") as producer:
        with pytest.raises(SchemaMismatchError, match="features"):
            nested: Any = {"age": {"nested": 1}}  # no feature value: the point of the test
            producer.send_features("churn", nested)
        assert len(producer) == 0
        producer.send_features("churn", {"age": 41}).wait(30)
    # the topic holds the one good event: the refused one was never sent
    assert high_watermarks(s, s.topic("features"), s.data_partitions) == 1


def test_start_earliest_timestamp_and_latest(topics: Settings) -> None:
    s = topics
    with Producer(s, app="ops") as producer:
        for i in range(3):
            producer.send(alert(i))
        producer.flush(30)
        time.sleep(0.05)
        cut = time.time_ns() // 1_000_000
        time.sleep(0.05)
        for i in range(3, 6):
            producer.send(alert(i))
        producer.flush(30)

        with Subscriber(Alert, s, app="e", start="earliest") as sub:
            assert [g.record.alert_id for g in take(sub, 6)] == [f"a{i}" for i in range(6)]
        with Subscriber(Alert, s, app="t", start=cut) as sub:
            got = take(sub, 3)
            assert [g.record.alert_id for g in got] == ["a3", "a4", "a5"]
            assert all(g.timestamp_ms is not None and g.timestamp_ms >= cut for g in got)
            assert nothing_more(sub, 0.5)
        with Subscriber(Alert, s, app="l", start="latest") as sub:
            sub.wait_assigned()
            producer.send(alert(6)).wait(30)
            assert [g.record.alert_id for g in take(sub, 1)] == ["a6"]


def test_model_filter_keeps_only_the_chosen_models(topics: Settings) -> None:
    s = topics
    with Producer(s, app="scorer") as producer:
        for i in range(10):
            for model in ("churn", "fraud", "ltv"):
                producer.send(prediction(i, model))
    with Subscriber(Prediction, s, app="one", model="fraud", start="earliest") as sub:
        got = take(sub, 10)
        assert {g.record.model for g in got} == {"fraud"}
        assert nothing_more(sub, 0.5)
    with Subscriber(Prediction, s, app="two", model={"churn", "ltv"}, start="earliest") as sub:
        assert {g.record.model for g in take(sub, 20)} == {"churn", "ltv"}
        assert nothing_more(sub, 0.5)


def test_manual_commit_resumes_where_it_stopped(topics: Settings, group_id: str) -> None:
    s = topics  # alerts of one model share a key, so one partition holds them in order
    with Producer(s, app="ops") as producer:
        for i in range(6):
            producer.send(alert(i))
    kw: dict[str, Any] = {
        "app": "pager",
        "group_id": group_id,
        "start": "earliest",
        "commit": "manual",
    }
    with Subscriber(Alert, s, **kw) as sub:
        assert sub.group_id == group_id
        assert [g.record.alert_id for g in take(sub, 3)] == ["a0", "a1", "a2"]
        sub.commit()  # a0..a2, the record in hand included
        assert take(sub, 1)[0].record.alert_id == "a3"  # read, never committed
    with Subscriber(Alert, s, **kw) as sub:
        assert [g.record.alert_id for g in take(sub, 3)] == ["a3", "a4", "a5"]
    with Subscriber(Alert, s, **kw) as sub:  # nothing committed by the second reader
        assert take(sub, 1)[0].record.alert_id == "a3"


def test_auto_commit_counts_a_record_once_the_next_is_asked_for(topics: Settings) -> None:
    s = topics
    with Producer(s, app="ops") as producer:
        for i in range(6):
            producer.send(alert(i))
    with Subscriber(Alert, s, app="auto", start="earliest") as sub:
        assert sub.group_id == f"auto-{s.topic('alerts')}"
        take(sub, 2)  # a0 processed (a1 was asked for), a1 in hand: clean exit, processed
    with (
        pytest.raises(RuntimeError, match="handler failed"),
        Subscriber(Alert, s, app="auto", start="earliest") as sub,
    ):
        assert take(sub, 1)[0].record.alert_id == "a2"
        raise RuntimeError("handler failed")  # a2 was not processed
    with Subscriber(Alert, s, app="auto", start="earliest") as sub:
        assert take(sub, 1)[0].record.alert_id == "a2"
    with Subscriber(Alert, s, app="replay", start="earliest", commit="none") as sub:
        take(sub, 3)
    with Subscriber(Alert, s, app="replay", start="earliest", commit="none") as sub:
        assert take(sub, 1)[0].record.alert_id == "a0"


def test_undecodable_messages_raise_or_are_skipped_and_counted(topics: Settings) -> None:
    s = topics
    raw = KafkaProducer(producer_config(s, "raw"))
    topic = s.topic("alerts")
    values = [
        b"not avro at all",
        encode("Alert", EXAMPLES["Alert"](alert_id="ok-1")),
        encode("Label", EXAMPLES["Label"]()),  # a published record, but not an Alert
        b"\xc3\x01" + bytes(8) + b"\x00",  # unknown fingerprint
        None,  # a tombstone
        encode("Alert", EXAMPLES["Alert"](alert_id="ok-2")),
    ]
    for v in values:
        raw.produce(topic, v, b"churn")
    assert raw.flush(30) == 0
    raw.close()

    with Subscriber(Alert, s, app="strict", start="earliest") as sub:
        with pytest.raises(UndecodableMessageError) as first:
            sub.poll(30)
        assert first.value.reason == "undecodable"
        assert first.value.value == b"not avro at all" and first.value.key == b"churn"
        assert first.value.topic == topic and first.value.offset == 0
        assert take(sub, 1)[0].record.alert_id == "ok-1"  # iterating on moves past it
        reasons = []
        for _ in range(2):
            with pytest.raises(UndecodableMessageError) as bad:
                sub.poll(30)
            reasons.append(bad.value.reason)
        assert reasons == ["wrong_record", "unknown_schema"]
        assert take(sub, 1)[0].record.alert_id == "ok-2"
        assert sub.skipped == {"tombstone": 1}

    with Subscriber(Alert, s, app="lenient", start="earliest", on_error="skip_and_count") as sub:
        assert [g.record.alert_id for g in take(sub, 2)] == ["ok-1", "ok-2"]
        assert sub.skipped == {
            "undecodable": 1, "wrong_record": 1, "unknown_schema": 1, "tombstone": 1
        }  # fmt: skip


def test_registry_events_are_keyed_by_model_and_version(topics: Settings) -> None:
    s = topics
    versions = [
        ModelVersion.from_dict(EXAMPLES["ModelVersion"](version=f"v{i}", stage=stage))
        for i, stage in enumerate(["champion", "challenger", "archived"])
    ]
    with Producer(s, app="trainer") as producer:
        for v in versions:
            producer.send(v)
    with Subscriber(ModelVersion, s, app="watch", start="earliest", idle_timeout=1) as sub:
        got = list(sub)
    assert [g.key for g in got] == ["churn/v0", "churn/v1", "churn/v2"]
    assert [g.record for g in got] == versions
