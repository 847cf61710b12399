"""Subscribe from asyncio code: an async iterator with :class:`Subscriber`'s options.

Every librdkafka call runs on one worker thread (reads in batches), so the event loop
never blocks; decoding happens on the loop, record by record. One task at a time
may iterate a given AsyncSubscriber.

Example (needs a broker)::

    from driftline.client import Alert, AsyncSubscriber

    async def watch() -> None:
        async with AsyncSubscriber(Alert, app="pager", model="churn") as alerts:
            async for got in alerts:
                print(got.record.severity, got.record.message)
"""

from __future__ import annotations

import asyncio
import functools
import time
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TypeVar

from driftline.client._consuming import Subscription
from driftline.client.received import Received
from driftline.client.records import Record

__all__ = ["AsyncSubscriber"]

R = TypeVar("R", bound=Record)


class AsyncSubscriber(Subscription[R]):
    """Async iteration over one Driftline topic; arguments as :class:`Subscriber`."""

    @functools.cached_property
    def _executor(self) -> ThreadPoolExecutor:
        """The one thread that makes every librdkafka call."""
        return ThreadPoolExecutor(1, thread_name_prefix="driftline-subscriber")

    async def _fetch(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._reader.fetch, timeout)

    async def poll(self, timeout: float | None = None) -> Received[R] | None:
        """The next record, waiting up to ``timeout`` seconds (None: forever)."""
        deadline = self._deadline(timeout)
        while (got := self._reader.next_record()) is None:
            if (step := self._fetch_for(deadline)) is None:
                return None
            await self._fetch(step)
        return got

    async def wait_assigned(self, timeout: float = 30.0) -> frozenset[int]:
        """Join the group; see :meth:`Subscriber.wait_assigned`."""
        deadline = time.monotonic() + timeout
        while self._unassigned(deadline, timeout):
            await self._fetch(0.1)
        return self._reader.assigned

    async def commit(self) -> None:
        """Commit every record handed out so far, including the current one."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._reader.commit)

    async def close(self, processed: bool = True) -> None:
        """Leave the group. With ``processed`` the record in hand counts as done."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._reader.close, processed)
        finally:
            self._executor.shutdown(wait=False)

    def __aiter__(self) -> AsyncSubscriber[R]:
        return self

    async def __anext__(self) -> Received[R]:
        got = await self.poll(self.idle_timeout)
        if got is None:
            raise StopAsyncIteration
        return got

    async def __aenter__(self) -> AsyncSubscriber[R]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close(processed=exc_type is None)
