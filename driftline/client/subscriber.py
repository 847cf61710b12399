"""Subscribe to Driftline's output: an iterator of typed, decoded records.

Give the record class to read (:class:`Prediction`, :class:`Outcome`, :class:`Alert`,
:class:`RetrainTrigger`, :class:`ModelVersion`, also :class:`FeatureEvent` and
:class:`Label`); the topic is the record's own (``Prediction.TOPIC`` under the
settings' prefix) unless ``topic`` names another (``"predictions.shadow"``).

Options, all keyword-only:

``app``
    Names the application. The consumer group is ``f"{app}-{topic}"`` (full topic
    name) unless ``group_id`` is given: instances of one app share the records,
    different apps each get all of them.
``model``
    A model name or a collection of them: other models' records are skipped
    (and count as processed). None (default): every model.
``start``
    Where to begin on a partition for which the group has no committed offset:
    ``"latest"`` (default: the end at the time the partition is assigned),
    ``"earliest"``, or a time (ms since the epoch, or an aware ``datetime``): the
    first record whose Kafka timestamp is at or after it. A group that committed
    resumes where it stopped; use a new ``group_id`` or ``commit="none"`` to replay.
``commit``
    ``"auto"`` (default): a record counts as processed when you ask for the next
    one, or leave the ``with`` block without an exception; processed positions are
    committed in the background and on close (at-least-once). ``"manual"``: nothing
    is committed until you call :meth:`Subscriber.commit`, which commits every record
    handed out so far. ``"none"``: never commit (the group keeps no position).
``on_error``
    A message that cannot be decoded into the record (not single-object Avro, an
    unknown schema, another record type): ``"raise"`` (default) raises
    :class:`~driftline.client.errors.UndecodableMessageError` from the iteration,
    carrying the reason, position and raw bytes; iterating on moves past it.
    ``"skip_and_count"`` logs a warning, skips it and counts it in
    :attr:`Subscriber.skipped` by reason. Nothing is dropped silently: tombstones
    (null values) are skipped and counted as ``"tombstone"``.
``idle_timeout``
    Stop iterating after this many seconds without a record (None: never).

Example (needs a broker)::

    from driftline.client import Prediction, Subscriber

    with Subscriber(Prediction, app="dashboard", model="churn") as predictions:
        for got in predictions:
            p = got.record
            print(p.event_id, p.version, p.prediction, got.partition, got.offset)
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import TypeVar

from driftline.client._consuming import Subscription
from driftline.client.received import Received
from driftline.client.records import Record

__all__ = ["Subscriber"]

R = TypeVar("R", bound=Record)


class Subscriber(Subscription[R]):
    """Iterate over one Driftline topic as :class:`Received` records of ``record_type``.

    See the module documentation for the options. Use it as a context manager (or
    call :meth:`close`) so the group is left cleanly and positions are committed.
    """

    def poll(self, timeout: float | None = None) -> Received[R] | None:
        """The next record, waiting up to ``timeout`` seconds (None: forever)."""
        deadline = self._deadline(timeout)
        while (got := self._reader.next_record()) is None:
            if (step := self._fetch_for(deadline)) is None:
                return None
            self._reader.fetch(step)
        return got

    def wait_assigned(self, timeout: float = 30.0) -> frozenset[int]:
        """Join the group: read until partitions are assigned (records read meanwhile
        stay buffered). Raises TimeoutError if none are within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self._unassigned(deadline, timeout):
            self._reader.fetch(0.1)
        return self._reader.assigned

    def commit(self) -> None:
        """Commit every record handed out so far, including the current one."""
        self._reader.commit()

    def close(self, processed: bool = True) -> None:
        """Leave the group. With ``processed`` the record in hand counts as done."""
        self._reader.close(processed)

    def __iter__(self) -> Subscriber[R]:
        return self

    def __next__(self) -> Received[R]:
        got = self.poll(self.idle_timeout)
        if got is None:
            raise StopIteration
        return got

    def __enter__(self) -> Subscriber[R]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(processed=exc_type is None)
