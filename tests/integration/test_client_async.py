"""The asyncio producer and subscriber against the real broker."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from driftline.client import (
    AsyncDelivery,
    AsyncProducer,
    AsyncSubscriber,
    FeatureEvent,
    Label,
    Received,
    UndecodableMessageError,
)
from driftline.kafka import admin
from driftline.settings import Settings
from tests.integration.clienthelpers import R, java_partition
from tests.unit.core.examples import known


async def atake(sub: AsyncSubscriber[R], n: int, timeout: float = 30.0) -> list[Received[R]]:
    async def collect() -> list[Received[R]]:
        out: list[Received[R]] = []
        async for got in sub:
            out.append(got)
            if len(out) == n:
                break
        return out

    return await asyncio.wait_for(collect(), timeout)


def test_async_producer_and_subscriber_round_trip(settings: Settings, group_id: str) -> None:
    admin.apply(settings)
    s = settings

    async def run() -> None:
        confirmed: list[str] = []

        def on_delivery(d: AsyncDelivery) -> None:
            confirmed.append(d.event_id or "")

        async with AsyncProducer(s, app="shop") as producer:
            sent = [
                await producer.send_features(
                    "churn" if i % 2 else "fraud", {"i": i}, on_delivery=on_delivery
                )
                for i in range(20)
            ]
            reports = await asyncio.gather(*sent)
            label_reports = await asyncio.gather(
                *[
                    await producer.send_label("churn" if i % 2 else "fraud", d.event_id or "", i)
                    for i, d in enumerate(sent)
                ]
            )
        assert sorted(confirmed) == sorted(known(d.event_id) for d in sent)
        for d, r, lr in zip(sent, reports, label_reports, strict=True):
            assert r.key == d.event_id
            assert r.partition == java_partition(d.event_id or "", s.data_partitions)
            assert lr.partition == r.partition

        kw: dict[str, Any] = {
            "app": "reader",
            "model": "churn",
            "start": "earliest",
            "commit": "manual",
        }
        async with AsyncSubscriber(FeatureEvent, s, group_id=group_id, **kw) as sub:
            first = await atake(sub, 4)
            await sub.commit()
        assert all(g.record.model == "churn" for g in first)
        async with AsyncSubscriber(FeatureEvent, s, group_id=group_id, **kw) as sub:
            rest = await atake(sub, 6)
            assert await sub.poll(0.5) is None
        churn = {d.event_id for i, d in enumerate(sent) if i % 2}
        assert {g.record.event_id for g in first + rest} == churn

        async with AsyncSubscriber(
            Label, s, app="labels", start="earliest", idle_timeout=1
        ) as label_sub:
            got = [g async for g in label_sub]
        assert len(got) == 20 and {g.record.label for g in got} == set(range(20))

    asyncio.run(run())


def test_async_subscriber_raises_on_undecodable_and_goes_on(settings: Settings) -> None:
    admin.apply(settings)
    s = settings

    async def run() -> None:
        from confluent_kafka import Producer as KafkaProducer

        from driftline.kafka.clients import producer_config

        raw = KafkaProducer(producer_config(s, "raw"))
        raw.produce(s.topic("features"), b"garbage", b"k1")
        assert raw.flush(30) == 0
        raw.close()
        async with AsyncProducer(s, app="shop") as producer:
            await (await producer.send_features("churn", {"a": 1}, event_id="k1"))
        async with AsyncSubscriber(FeatureEvent, s, app="strict", start="earliest") as sub:
            with pytest.raises(UndecodableMessageError, match="single-object marker"):
                await sub.poll(30)
            got = await sub.poll(30)
            assert got is not None and got.record.event_id == "k1"

    asyncio.run(run())
