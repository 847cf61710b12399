"""Typed records: to_dict/from_dict round trips, keys, times and topics (no broker)."""

from __future__ import annotations

import dataclasses

import pytest

from driftline.client import (
    Alert,
    FeatureEvent,
    Label,
    ModelVersion,
    Outcome,
    Prediction,
    Record,
    RetrainTrigger,
)
from driftline.core.wire.codec import Codec
from driftline.core.wire.topics import declare
from tests.unit.core.examples import EXAMPLES, T0, same

CODEC = Codec()
RECORDS: list[type[Record]] = [
    FeatureEvent,
    Label,
    Prediction,
    Outcome,
    Alert,
    RetrainTrigger,
    ModelVersion,
]


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
def test_from_dict_then_to_dict_gives_the_same_dict(cls: type[Record]) -> None:
    d = EXAMPLES[cls.__name__]()
    record = cls.from_dict(d)
    assert same(record.to_dict(), d)
    assert cls.from_dict(record.to_dict()) == record


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
def test_a_record_survives_the_codec(cls: type[Record]) -> None:
    record = cls.from_dict(EXAMPLES[cls.__name__]())
    decoded = CODEC.decode(CODEC.encode(cls.SCHEMA, record.to_dict()), expect=cls.SCHEMA)
    assert decoded.name == cls.SCHEMA
    assert cls.from_dict(decoded.value) == record


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
def test_each_record_names_its_schema_and_the_topic_that_carries_it(cls: type[Record]) -> None:
    assert CODEC.schemas.current(cls.SCHEMA).name == cls.SCHEMA
    topics = {s.name: s for s in declare("", 3, 1)}
    assert topics[cls.TOPIC].value == cls.__name__
    schema_fields = {f["name"] for f in CODEC.schemas.current(cls.SCHEMA).schema["fields"]}
    assert {f.name for f in dataclasses.fields(cls)} == schema_fields  # type: ignore[arg-type]
    assert cls.TIME_FIELD in schema_fields
    record = cls.from_dict(EXAMPLES[cls.__name__]())
    assert record.time_ms() == record.to_dict()[cls.TIME_FIELD]


@pytest.mark.parametrize(
    ("cls", "key"),
    [
        (FeatureEvent, "evt-0001"),
        (Label, "evt-0001"),
        (Prediction, "evt-0001"),
        (Outcome, "evt-0001"),
        (Alert, "churn"),
        (RetrainTrigger, "churn"),
        (ModelVersion, "churn/v4"),
    ],
)
def test_keys_follow_the_topic_table(cls: type[Record], key: str) -> None:
    assert cls.from_dict(EXAMPLES[cls.__name__]()).key() == key


def test_fields_with_schema_defaults_may_be_left_out() -> None:
    p = Prediction.from_dict(
        {
            "event_id": "e",
            "model": "m",
            "version": "v1",
            "event_time_ms": T0,
            "predicted_at_ms": T0,
            "prediction": 0.5,
            "latency_us": 3,
        }
    )
    assert (p.scores, p.features, p.segment, p.served_by) == ({}, {}, {}, "driftline")
    a = Alert(
        alert_id="a",
        model="m",
        kind="model_error",
        severity="critical",
        message="boom",
        evidence={},
        created_at_ms=T0,
    )
    assert a.to_dict()["version"] is None and a.to_dict()["segment"] is None
    CODEC.encode(Alert.SCHEMA, a.to_dict())


def test_records_are_frozen_and_to_dict_gives_fresh_containers() -> None:
    event = FeatureEvent.from_dict(EXAMPLES["FeatureEvent"]())
    with pytest.raises(AttributeError):
        event.model = "other"  # type: ignore[misc]
    d = event.to_dict()
    d["features"]["age"] = -1
    assert event.features["age"] == 41
    mv = ModelVersion.from_dict(EXAMPLES["ModelVersion"]())
    mv.to_dict()["lineage"]["data_ranges"].clear()
    assert len(mv.lineage["data_ranges"]) == 2
