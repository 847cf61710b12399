"""Driftline's client library: feed Driftline, and react to what it publishes.

Upstream applications send feature events and, later, labels with :class:`Producer`
(or :class:`AsyncProducer`); downstream applications iterate over predictions,
outcomes, alerts, retrain triggers and registry events with :class:`Subscriber`
(or :class:`AsyncSubscriber`). Records are typed, frozen dataclasses; on the wire
they are Avro single-object encoded (see docs/wire-format.md).

>>> from driftline.client import FeatureEvent
>>> event = FeatureEvent(event_id="e-1", model="churn", event_time_ms=1_700_000_000_000,
...                      features={"age": 41, "plan": "family"})
>>> event.key(), event.TOPIC
('e-1', 'features')

Example (needs a broker)::

    from driftline.client import Prediction, Producer, Subscriber
    from driftline.settings import Settings

    settings = Settings(bootstrap_servers="localhost:9092")
    with Producer(settings, app="shop") as producer:
        event_id = producer.send_features("churn", {"age": 41}).event_id

    with Subscriber(Prediction, settings, app="shop", model="churn",
                    start="earliest", idle_timeout=10) as predictions:
        for got in predictions:
            print(got.record.event_id, got.record.prediction)
"""

from __future__ import annotations

from driftline.client.async_producer import AsyncProducer
from driftline.client.async_subscriber import AsyncSubscriber
from driftline.client.delivery import AsyncDelivery, Delivered, Delivery
from driftline.client.errors import DeliveryError, UndecodableMessageError
from driftline.client.lifecycle import ModelVersion, RetrainTrigger
from driftline.client.producer import Producer
from driftline.client.received import CommitMode, OnError, Received, Start
from driftline.client.records import (
    Alert,
    ChallengerPrediction,
    FeatureEvent,
    FeatureValue,
    Label,
    Outcome,
    Prediction,
    Record,
)
from driftline.client.subscriber import Subscriber
from driftline.core.errors import SchemaMismatchError

__all__ = [
    "Alert",
    "AsyncDelivery",
    "AsyncProducer",
    "AsyncSubscriber",
    "ChallengerPrediction",
    "CommitMode",
    "Delivered",
    "Delivery",
    "DeliveryError",
    "FeatureEvent",
    "FeatureValue",
    "Label",
    "ModelVersion",
    "OnError",
    "Outcome",
    "Prediction",
    "Producer",
    "Received",
    "Record",
    "RetrainTrigger",
    "SchemaMismatchError",
    "Start",
    "Subscriber",
    "UndecodableMessageError",
]
