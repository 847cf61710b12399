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
from collections import Counter
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Generic, TypeVar

from driftline.client._consuming import Reader
from driftline.client.received import CommitMode, OnError, Received, Start
from driftline.client.records import Record
from driftline.core.wire.codec import Codec
from driftline.settings import Settings

__all__ = ["Subscriber"]

R = TypeVar("R", bound=Record)
_FETCH_S = 0.5  # longest single wait in librdkafka, so timeouts stay accurate


class Subscriber(Generic[R]):
    """Iterate over one Driftline topic as :class:`Received` records of ``record_type``.

    See the module documentation for the options. Use it as a context manager (or
    call :meth:`close`) so the group is left cleanly and positions are committed.
    """

    def __init__(
        self,
        record_type: type[R],
        settings: Settings | None = None,
        *,
        app: str,
        topic: str | None = None,
        model: str | Iterable[str] | None = None,
        group_id: str | None = None,
        start: Start = "latest",
        commit: CommitMode = "auto",
        on_error: OnError = "raise",
        idle_timeout: float | None = None,
        codec: Codec | None = None,
        config: Mapping[str, Any] | None = None,
        batch_size: int = 500,
    ) -> None:
        self._reader = Reader(
            record_type,
            settings,
            app=app,
            topic=topic,
            model=model,
            group_id=group_id,
            start=start,
            commit=commit,
            on_error=on_error,
            codec=codec,
            config=config,
            batch_size=batch_size,
        )
        self.idle_timeout = idle_timeout

    @property
    def topic(self) -> str:
        """The full topic name."""
        return self._reader.topic

    @property
    def group_id(self) -> str:
        """The consumer group."""
        return self._reader.group_id

    @property
    def skipped(self) -> Counter[str]:
        """Messages skipped, by reason (``tombstone`` and codec reason codes)."""
        return Counter(self._reader.skipped)

    @property
    def assigned(self) -> frozenset[int]:
        """Partitions currently assigned to this member."""
        return self._reader.assigned

    def poll(self, timeout: float | None = None) -> Received[R] | None:
        """The next record, waiting up to ``timeout`` seconds (None: forever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            got = self._reader.next_record()
            if got is not None:
                return got
            step = _FETCH_S
            if deadline is not None:
                step = min(step, deadline - time.monotonic())
                if step < 0:
                    return None
            self._reader.fetch(step)

    def wait_assigned(self, timeout: float = 30.0) -> frozenset[int]:
        """Join the group: read until partitions are assigned (records read meanwhile
        stay buffered). Raises TimeoutError if none are within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not self._reader.assigned:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no partition of {self.topic} assigned in {timeout} s")
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
