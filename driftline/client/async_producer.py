"""The producer for asyncio applications: same messages as :class:`Producer`,
awaitable delivery.

A background thread serves librdkafka's delivery callbacks and hands each result to
the event loop (``loop.call_soon_threadsafe``), so ``await`` on a delivery never
blocks the loop. A send itself awaits only when the local queue is full.

Example (needs a broker)::

    import asyncio
import contextlib
    from driftline.client import AsyncProducer

    async def main() -> None:
        async with AsyncProducer(app="shop") as producer:
            sent = await producer.send_features("churn", {"age": 41})  # queued
            report = await sent                                        # acknowledged
            print(sent.event_id, report.partition, report.offset)

    asyncio.run(main())
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from driftline.client._outgoing import ProducerBase
from driftline.client.delivery import AsyncDelivery, Delivered, outcome
from driftline.client.errors import DeliveryError
from driftline.client.records import FeatureValue, Record

__all__ = ["AsyncProducer"]

OnAsyncDelivery = Callable[[AsyncDelivery], None]


def _settle(
    delivery: AsyncDelivery,
    report: Delivered | None,
    error: DeliveryError | None,
    on_delivery: OnAsyncDelivery | None,
) -> None:
    """Runs on the event loop: resolve the future, then call the user's callback."""
    if delivery.future.done():  # cancelled by the caller
        return
    if error is not None:
        delivery.future.set_exception(error)
    else:
        delivery.future.set_result(report)  # type: ignore[arg-type]
    if on_delivery is not None:
        on_delivery(delivery)


class AsyncProducer(ProducerBase):
    """Send Driftline records from asyncio code; arguments as :class:`Producer`.

    ``send_*`` are coroutines that return once the message is queued; await the
    returned :class:`AsyncDelivery` for the broker's acknowledgement. ``on_delivery``
    callbacks run on the event loop. Use ``async with`` or call ``close()``.
    """

    def _started(self) -> None:
        self._stop = threading.Event()
        self._poller = threading.Thread(
            target=self._poll_forever, name=f"driftline-producer-{self.app}", daemon=True
        )
        self._poller.start()

    def _poll_forever(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    async def send_features(
        self,
        model: str,
        features: Mapping[str, FeatureValue],
        *,
        event_id: str | None = None,
        event_time_ms: int | None = None,
        segment: Mapping[str, str] | None = None,
        source: str | None = None,
        trace_id: str | None = None,
        on_delivery: OnAsyncDelivery | None = None,
    ) -> AsyncDelivery:
        """Queue one feature event; see :meth:`Producer.send_features`."""
        record = self.feature_event(model, features, event_id, event_time_ms, segment, source)
        return await self.send(record, trace_id=trace_id, on_delivery=on_delivery)

    async def send_label(
        self,
        model: str,
        event_id: str,
        label: FeatureValue,
        *,
        label_time_ms: int | None = None,
        trace_id: str | None = None,
        on_delivery: OnAsyncDelivery | None = None,
    ) -> AsyncDelivery:
        """Queue the ground truth of ``event_id``; see :meth:`Producer.send_label`."""
        record = self.label(model, event_id, label, label_time_ms)
        return await self.send(record, trace_id=trace_id, on_delivery=on_delivery)

    async def send(
        self,
        record: Record,
        *,
        topic: str | None = None,
        trace_id: str | None = None,
        on_delivery: OnAsyncDelivery | None = None,
    ) -> AsyncDelivery:
        """Queue any typed record; see :meth:`Producer.send`."""
        out = self.prepare(record, topic, trace_id)
        loop = asyncio.get_running_loop()
        delivery = AsyncDelivery(out.topic, out.key, loop.create_future())

        def settle(err: Any, msg: Any) -> None:  # on the poll thread
            report, error = outcome(err, msg, out.topic, out.key)
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_settle, delivery, report, error, on_delivery)

        deadline = loop.time() + self.queue_full_timeout
        while not self._offer(out, settle, deadline, loop.time()):
            await asyncio.sleep(0.01)
        return delivery

    async def flush(self, timeout: float | None = None) -> int:
        """Wait (off the loop) until every queued message is confirmed or ``timeout``
        seconds passed; returns how many are still unconfirmed."""
        if self._closed:
            return 0
        t = -1 if timeout is None else timeout
        return await asyncio.to_thread(self._producer.flush, t)

    async def close(self, timeout: float = 30.0) -> None:
        """Flush, stop the poll thread and release the connections; raise KafkaError
        (and keep the producer open) if messages are unconfirmed after ``timeout`` s."""
        if self._closed:
            return
        self._confirmed(await self.flush(timeout), timeout)
        await self._stop_polling()
        self._release()

    async def _stop_polling(self) -> None:
        self._stop.set()
        await asyncio.to_thread(self._poller.join)
        await asyncio.sleep(0)  # let the last call_soon_threadsafe settlements run

    async def __aenter__(self) -> AsyncProducer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.close()
        elif not self._closed and await self.flush(5.0) == 0:  # best effort
            await self._stop_polling()
            self._release()
