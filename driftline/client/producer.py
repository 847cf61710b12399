"""The producer upstream applications use to send feature events and labels.

Every message is the record in Avro single-object encoding, keyed by its event_id
(UTF-8), with Driftline's headers, sent by an idempotent (``enable.idempotence``),
batching (``linger.ms``) producer that hashes keys with murmur2 as Java and Faust do
(``partitioner=murmur2_random``), so a key lands on the partition the pipeline
expects. A record that does not fit its schema raises
:class:`~driftline.core.errors.SchemaMismatchError` naming the field, before
anything is queued.

Example (needs a broker)::

    from driftline.client import Producer
    from driftline.settings import Settings

    with Producer(Settings(bootstrap_servers="localhost:9092"), app="shop") as producer:
        sent = producer.send_features("churn", {"age": 41, "plan": "family"},
                                      segment={"region": "eu"})
        sent.wait(10)                      # the broker has it (or DeliveryError)
        producer.send_label("churn", sent.event_id, True)
    # leaving the block flushes: every message is confirmed or an error is raised
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from driftline.client._outgoing import Outgoing, ProducerBase
from driftline.client.delivery import Delivery, outcome
from driftline.client.records import FeatureValue, Record

__all__ = ["Producer"]

OnDelivery = Callable[[Delivery], None]


class Producer(ProducerBase):
    """Send Driftline records from a synchronous application.

    ``settings`` default to ``Settings()`` (the ``DRIFTLINE_*`` environment);
    ``app`` names the application in the client id; ``config`` overrides any
    librdkafka setting (for example ``{"linger.ms": 50}``). ``queue_full_timeout``
    is how long a send waits for room when the local queue is full.

    Delivery callbacks (``on_delivery``) run inside ``send_*``, ``poll``, ``flush``
    and ``Delivery.wait``, on the calling thread; an exception they raise comes out
    of that call.
    """

    def send_features(
        self,
        model: str,
        features: Mapping[str, FeatureValue],
        *,
        event_id: str | None = None,
        event_time_ms: int | None = None,
        segment: Mapping[str, str] | None = None,
        source: str | None = None,
        trace_id: str | None = None,
        on_delivery: OnDelivery | None = None,
    ) -> Delivery:
        """Send one feature event for ``model``; returns its Delivery (``.event_id``).

        ``event_id`` defaults to a new uuid4, ``event_time_ms`` to now, ``trace_id``
        to a new trace id; ``source`` names the sending application (FeatureEvent v2).
        Raises SchemaMismatchError if a feature value is not null, bool, int, float or
        str, before anything is sent.
        """
        record = self.feature_event(model, features, event_id, event_time_ms, segment, source)
        return self.send(record, trace_id=trace_id, on_delivery=on_delivery)

    def send_label(
        self,
        model: str,
        event_id: str,
        label: FeatureValue,
        *,
        label_time_ms: int | None = None,
        trace_id: str | None = None,
        on_delivery: OnDelivery | None = None,
    ) -> Delivery:
        """Send the ground truth of the earlier event ``event_id``.

        ``label_time_ms`` (when the truth became known) defaults to now.
        """
        record = self.label(model, event_id, label, label_time_ms)
        return self.send(record, trace_id=trace_id, on_delivery=on_delivery)

    def send(
        self,
        record: Record,
        *,
        topic: str | None = None,
        trace_id: str | None = None,
        on_delivery: OnDelivery | None = None,
    ) -> Delivery:
        """Send any typed record to its topic (``record.TOPIC``) or to ``topic``
        (a name without the prefix, e.g. ``predictions.shadow``)."""
        out = self.prepare(record, topic, trace_id)
        delivery = Delivery(out.topic, out.key, self._producer.poll)

        def settle(err: Any, msg: Any) -> None:
            delivery._settle(*outcome(err, msg, out.topic, out.key))
            if on_delivery is not None:
                on_delivery(delivery)

        self._produce(out, settle)
        return delivery

    def _produce(self, out: Outgoing, callback: Callable[[Any, Any], None]) -> None:
        deadline = time.monotonic() + self.queue_full_timeout
        while not self._offer(out, callback, deadline, time.monotonic()):
            self._producer.poll(0.05)
        self._producer.poll(0)

    def poll(self, timeout: float = 0.0) -> int:
        """Serve delivery callbacks for up to ``timeout`` seconds; returns how many ran."""
        return 0 if self._closed else self._producer.poll(timeout)

    def flush(self, timeout: float | None = None) -> int:
        """Wait until every queued message is confirmed (or ``timeout`` s passed);
        returns how many are still unconfirmed."""
        if self._closed:
            return 0
        return self._producer.flush(-1 if timeout is None else timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Flush and release the connections; raise KafkaError (and keep the producer
        open) if some messages are still unconfirmed after ``timeout`` seconds."""
        if self._closed:
            return
        self._confirmed(self.flush(timeout), timeout)
        self._release()

    def __enter__(self) -> Producer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        elif not self._closed and self.flush(5.0) == 0:  # best effort: keep the exception
            self._release()
