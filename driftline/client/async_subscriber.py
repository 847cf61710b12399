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
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, Generic, TypeVar

from driftline.client._consuming import Reader
from driftline.client.received import CommitMode, OnError, Received, Start
from driftline.client.records import Record
from driftline.core.wire.codec import Codec
from driftline.settings import Settings

__all__ = ["AsyncSubscriber"]

R = TypeVar("R", bound=Record)
_FETCH_S = 0.5


class AsyncSubscriber(Generic[R]):
    """Async iteration over one Driftline topic; arguments as :class:`Subscriber`."""

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
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="driftline-subscriber")

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

    async def _fetch(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._reader.fetch, timeout)

    async def poll(self, timeout: float | None = None) -> Received[R] | None:
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
            await self._fetch(step)

    async def wait_assigned(self, timeout: float = 30.0) -> frozenset[int]:
        """Join the group; see :meth:`Subscriber.wait_assigned`."""
        deadline = time.monotonic() + timeout
        while not self._reader.assigned:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no partition of {self.topic} assigned in {timeout} s")
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
