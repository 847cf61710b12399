"""The producers without a broker: librdkafka's built-in mock cluster
(``test.mock.num.brokers``) stands in for Kafka, so what is queued is real."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest
from aiokafka.partitioner import murmur2
from confluent_kafka import KafkaError as RdKafkaError

from driftline.client import (
    Alert,
    AsyncProducer,
    Delivered,
    Delivery,
    DeliveryError,
    Producer,
    SchemaMismatchError,
)
from driftline.client.delivery import outcome
from driftline.core.errors import KafkaError, ValidationError
from driftline.core.wire import headers
from driftline.core.wire.codec import HEADER_SIZE, MARKER, Codec
from driftline.settings import Settings
from tests.unit.core.examples import EXAMPLES

MOCK = {"test.mock.num.brokers": 1}
MOCK_PARTITIONS = 4  # what librdkafka's mock cluster gives an auto-created topic
CODEC = Codec()


@pytest.fixture
def producer() -> Iterator[Producer]:
    p = Producer(Settings(topic_prefix="u."), app="unit", config=MOCK)
    yield p
    p.close(10)


@pytest.mark.parametrize(
    ("send", "field"),
    [
        (lambda p: p.send_features("churn", {"age": [41]}), "features"),
        (lambda p: p.send_features("churn", {"age": object()}), "features"),
        (lambda p: p.send_features("churn", {1: 2}), "features"),
        (lambda p: p.send_features(None, {"age": 41}), "model"),
        (lambda p: p.send_features("churn", {}, segment={"region": 1}), "segment"),
        (lambda p: p.send_features("churn", {}, event_time_ms="now"), "event_time_ms"),
        (lambda p: p.send_label("churn", "e-1", {"nested": True}), "label"),
        (lambda p: p.send_label("churn", None, True), "event_id"),
    ],
)
def test_a_record_that_breaks_the_schema_is_refused_before_anything_is_queued(
    producer: Producer, send, field: str
) -> None:
    with pytest.raises(SchemaMismatchError, match=rf"bad fields: .*\b{field}\b") as info:
        send(producer)
    assert info.value.reason == "schema_mismatch"
    assert len(producer) == 0


def test_an_empty_or_huge_event_id_is_refused_before_anything_is_queued(
    producer: Producer,
) -> None:
    for bad in ("", "x" * 257):
        with pytest.raises(ValidationError, match="invalid_event_id"):
            producer.send_features("churn", {"age": 41}, event_id=bad)
    assert len(producer) == 0


def test_a_wrong_argument_type_is_refused(producer: Producer) -> None:
    with pytest.raises(TypeError, match=r"driftline\.client record"):
        producer.send({"event_id": "e"})  # type: ignore[arg-type]
    assert len(producer) == 0


def test_the_message_is_single_object_avro_with_headers(producer: Producer) -> None:
    before = time.time_ns() // 1_000_000
    out = producer.prepare(
        producer.feature_event("churn", {"age": 41}, None, None, {"region": "eu"}), None, None
    )
    assert out.topic == "u.features"
    assert str(uuid.UUID(out.key)) == out.key  # a uuid4 by default
    assert out.value[:2] == MARKER
    assert out.value[2:HEADER_SIZE] == CODEC.schemas.current("FeatureEvent").fingerprint
    decoded = CODEC.decode(out.value, expect="FeatureEvent").value
    assert decoded["event_id"] == out.key
    assert decoded["features"] == {"age": 41} and decoded["segment"] == {"region": "eu"}
    assert before <= decoded["event_time_ms"] <= time.time_ns() // 1_000_000
    hs = headers.parse(out.headers)
    assert hs[headers.CONTENT_TYPE] == headers.AVRO_SINGLE_OBJECT
    assert hs[headers.SCHEMA] == "io.driftline.FeatureEvent"
    assert hs[headers.EVENT_TIME] == str(decoded["event_time_ms"])
    assert len(hs[headers.TRACE_ID]) == 32


def test_send_uses_the_record_topic_or_the_given_one(producer: Producer) -> None:
    alert = Alert.from_dict(EXAMPLES["Alert"]())
    assert producer.prepare(alert, None, "t-1").topic == "u.alerts"
    assert producer.prepare(alert, "alerts.test", "t-1").topic == "u.alerts.test"
    assert producer.prepare(alert, None, "t-1").key == "churn"
    assert headers.parse(producer.prepare(alert, None, "t-1").headers)[headers.TRACE_ID] == "t-1"


def test_sends_are_confirmed_by_wait_and_callback_on_java_partitions(producer: Producer) -> None:
    seen: list[Delivery] = []
    sent = [
        producer.send_features("churn", {"i": i}, event_id=f"evt-{i}", on_delivery=seen.append)
        for i in range(40)
    ]
    reports = [d.wait(30) for d in sent]
    assert len(producer) == 0
    assert {d.event_id for d in seen} == {f"evt-{i}" for i in range(40)}
    assert all(d.done() and d.report is not None and d.error is None for d in sent)
    for i, r in enumerate(reports):
        assert r.key == f"evt-{i}" and r.topic == "u.features"
        java = (murmur2(f"evt-{i}".encode()) & 0x7FFFFFFF) % MOCK_PARTITIONS
        assert r.partition == java, f"evt-{i}"


def test_the_async_producer_resolves_deliveries_on_the_loop() -> None:
    async def run() -> tuple[list[Delivered], list[str]]:
        called: list[str] = []
        loop = asyncio.get_running_loop()

        def on_delivery(d: object) -> None:
            assert asyncio.get_running_loop() is loop
            called.append(d.event_id)  # type: ignore[attr-defined]

        async with AsyncProducer(Settings(topic_prefix="u."), app="unit", config=MOCK) as p:
            with pytest.raises(SchemaMismatchError):
                await p.send_features("churn", {"age": [1]})  # type: ignore[dict-item]  # refused
            assert len(p) == 0
            sent = [
                await p.send_label("churn", f"evt-{i}", i % 2 == 0, on_delivery=on_delivery)
                for i in range(10)
            ]
            reports = list(await asyncio.gather(*sent))
        return reports, called

    reports, called = asyncio.run(run())
    assert [r.key for r in reports] == [f"evt-{i}" for i in range(10)]
    assert sorted(called) == sorted(f"evt-{i}" for i in range(10))
    assert all(r.topic == "u.labels" for r in reports)


def test_wait_times_out_and_failures_raise_delivery_error() -> None:
    d = Delivery("t", "e-1", poll=lambda timeout: 0)
    with pytest.raises(TimeoutError, match="not confirmed"):
        d.wait(0.05)
    report, error = outcome(RdKafkaError(RdKafkaError._MSG_TIMED_OUT), None, "t", "e-1")
    assert report is None and isinstance(error, DeliveryError)
    assert error.code == "_MSG_TIMED_OUT" and error.key == "e-1" and error.topic == "t"
    d._settle(report, error)
    with pytest.raises(DeliveryError, match="_MSG_TIMED_OUT"):
        d.wait(1)
    assert repr(d) == "Delivery(t, key='e-1', failed)"


def test_a_closed_producer_refuses_to_send_and_closes_once() -> None:
    p = Producer(Settings(topic_prefix="u."), app="unit", config=MOCK)
    p.send_label("churn", "e-1", True)
    p.close(10)
    assert len(p) == 0 and p.flush() == 0 and p.poll() == 0
    p.close()
    with pytest.raises(KafkaError, match="closed"):
        p.send_label("churn", "e-2", True)
