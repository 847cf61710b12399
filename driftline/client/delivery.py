"""Delivery confirmation: what a send returns, for the sync and the asyncio producer.

A :class:`Delivery` (sync) or :class:`AsyncDelivery` (asyncio) is returned by every
send once the message is queued. It resolves to a :class:`Delivered` report when the
broker has acknowledged the message (``acks=all``), or to a
:class:`~driftline.client.errors.DeliveryError`.

>>> d = Delivery("t.labels", "e-1", poll=lambda timeout: 0)  # as Producer.send_label gives
>>> d.done(), d.event_id, d.report
(False, 'e-1', None)
>>> try:
...     d.wait(timeout=0.01)
... except TimeoutError as exc:
...     print(exc)
t.labels: message 'e-1' not confirmed within 0.01 s
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from driftline.client.errors import DeliveryError

__all__ = ["AsyncDelivery", "Delivered", "Delivery", "outcome"]


@dataclass(frozen=True, slots=True)
class Delivered:
    """The broker's acknowledgement of one message."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: str | None


def outcome(
    err: Any, msg: Any, topic: str, key: str | None
) -> tuple[Delivered | None, DeliveryError | None]:
    """Turn librdkafka's delivery callback arguments into a report or an error."""
    if err is not None:
        return None, DeliveryError(
            f"{topic}: message {key!r} not delivered: {err.str()}",
            err.name(),
            topic,
            key,
            bool(err.retriable()),
        )
    ts_type, ts = msg.timestamp()
    return Delivered(topic, msg.partition(), msg.offset(), ts if ts_type else None, key), None


class Delivery:
    """One message sent by :class:`~driftline.client.Producer`.

    ``wait()`` serves the producer's delivery callbacks until this message is
    confirmed, so it works without any background thread.
    """

    __slots__ = ("_error", "_poll", "_report", "key", "topic")

    def __init__(self, topic: str, key: str | None, poll: Callable[[float], int]) -> None:
        self.topic = topic
        self.key = key
        self._poll = poll
        self._report: Delivered | None = None
        self._error: DeliveryError | None = None

    @property
    def event_id(self) -> str | None:
        """The message key: the event_id of features, labels and predictions."""
        return self.key

    @property
    def report(self) -> Delivered | None:
        """The acknowledgement, once delivered."""
        return self._report

    @property
    def error(self) -> DeliveryError | None:
        """Why the message was not delivered, once it failed."""
        return self._error

    def done(self) -> bool:
        """Whether the message was delivered or failed."""
        return self._report is not None or self._error is not None

    def wait(self, timeout: float | None = None) -> Delivered:
        """Block until the broker confirms the message; return its report.

        Raises DeliveryError if it failed, TimeoutError if not settled in time.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done():
            step = 0.1
            if deadline is not None:
                step = min(step, deadline - time.monotonic())
                if step <= 0:
                    raise TimeoutError(
                        f"{self.topic}: message {self.key!r} not confirmed within {timeout} s"
                    )
            self._poll(step)
        if self._error is not None:
            raise self._error
        assert self._report is not None
        return self._report

    def _settle(self, report: Delivered | None, error: DeliveryError | None) -> None:
        self._report, self._error = report, error

    def __repr__(self) -> str:
        state = "pending" if not self.done() else ("failed" if self._error else "delivered")
        return f"Delivery({self.topic}, key={self.key!r}, {state})"


class AsyncDelivery:
    """One message sent by :class:`~driftline.client.AsyncProducer`; ``await`` it for
    the :class:`Delivered` report (or a DeliveryError)."""

    __slots__ = ("future", "key", "topic")

    def __init__(self, topic: str, key: str | None, future: asyncio.Future[Delivered]) -> None:
        self.topic = topic
        self.key = key
        self.future = future

    @property
    def event_id(self) -> str | None:
        """The message key: the event_id of features, labels and predictions."""
        return self.key

    @property
    def report(self) -> Delivered | None:
        """The acknowledgement, once delivered."""
        if self.future.done() and not self.future.cancelled() and not self.future.exception():
            return self.future.result()
        return None

    @property
    def error(self) -> DeliveryError | None:
        """Why the message was not delivered, once it failed."""
        if self.future.done() and not self.future.cancelled():
            exc = self.future.exception()
            return exc if isinstance(exc, DeliveryError) else None
        return None

    def done(self) -> bool:
        """Whether the message was delivered or failed."""
        return self.future.done()

    def __await__(self) -> Generator[Any, None, Delivered]:
        return self.future.__await__()

    def __repr__(self) -> str:
        state = "pending" if not self.done() else ("failed" if self.error else "delivered")
        return f"AsyncDelivery({self.topic}, key={self.key!r}, {state})"
