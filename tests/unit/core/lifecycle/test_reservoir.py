"""A version's training sample: seeded, bounded in rows and bytes, fits the record."""

from __future__ import annotations

import random
from typing import Any

import pytest

from driftline.core.lifecycle import reservoir
from driftline.core.lifecycle.training import train
from driftline.core.model.config import GateConfig, ModelConfig
from driftline.core.wire.codec import default_codec

KEY = b"reservoir-key"


def rows(n: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "features": {"amount": rng.random() * 10, "plan": rng.choice(["a", "b"]), "n": i},
            "label": rng.random() < 0.5,
            "segment": {"region": "eu"},
            "event_time_ms": 1_000 * i,
        }
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("n", "k", "expected"),
    [(10, 1_000, 10), (1_000, 1_000, 1_000), (5_000, 1_000, 1_000), (5_000, 0, 0)],
)
def test_sample_is_bounded_seeded_and_ordered(n: int, k: int, expected: int) -> None:
    data = rows(n)
    got = reservoir.sample(data, k, seed=3)
    assert len(got) == expected
    assert got == sorted(got, key=lambda r: r["event_time_ms"])
    assert got == reservoir.sample(data, k, seed=3)
    if n > k > 0:
        assert got != reservoir.sample(data, k, seed=4)
        # uniform: the sample's mean position is near the middle of the stream
        mean = sum(r["features"]["n"] for r in got) / len(got)
        assert abs(mean - n / 2) < n * 0.05


@pytest.mark.parametrize(
    "label", [True, "gold", 3, 2.5, -0.125], ids=["bool", "str", "int", "float", "float-"]
)
def test_encode_decode_keeps_types(label: Any) -> None:
    data = [{**r, "label": label} for r in rows(50)]
    assert reservoir.decode(reservoir.encode(data)) == data


@pytest.mark.parametrize(
    ("max_bytes", "most"),
    [(reservoir.SAMPLE_MAX_BYTES, 1_000), (8_000, 250), (2_000, 63), (20, 0)],
)
def test_encode_halves_until_it_fits(max_bytes: int, most: int) -> None:
    blob = reservoir.encode(rows(1_000), max_bytes)
    got = reservoir.decode(blob)
    assert len(got) <= most
    assert blob is None or len(blob) <= max_bytes
    assert (blob is None) is (most == 0)


@pytest.mark.parametrize(
    ("inline", "profile", "room"),
    [
        (0, 0, reservoir.SAMPLE_MAX_BYTES),
        (512_000, 50_000, reservoir.SAMPLE_MAX_BYTES),
        (800_000, 50_000, 900_000 - 32_768 - 850_000),
        (900_000, 0, 0),
    ],
)
def test_budget_leaves_the_record_under_its_limit(inline: int, profile: int, room: int) -> None:
    assert reservoir.budget({"inline": bytes(inline)}, "p" * profile) == room


def test_a_version_carries_its_sample_and_the_record_stays_under_the_limit() -> None:
    cfg = ModelConfig("churn", factory="logistic_regression", seed=5,
                      gate=GateConfig(min_segment_samples=50))  # fmt: skip
    run = train(rows(3_000), cfg, key=KEY, now_ms=1, code="c", host="h")
    sample = reservoir.decode(run.record["training_sample"])
    assert len(sample) == reservoir.SAMPLE_ROWS
    assert max(r["event_time_ms"] for r in sample) < 2_400_000  # training rows only
    again = train(rows(3_000), cfg, key=KEY, now_ms=2, code="c", host="h")
    assert again.record["training_sample"] == run.record["training_sample"]
    # the largest inline artifact there is: the sample shrinks, the record still fits
    big = dict(run.record, artifact=dict(run.record["artifact"], inline=bytes(512_000)))
    room = reservoir.budget(big["artifact"], big["reference_profile"])
    big["training_sample"] = reservoir.encode(sample, room)
    assert len(default_codec().encode("ModelVersion", big)) < 1_000_000
    none = train(rows(300), cfg, key=KEY, now_ms=1, code="c", host="h", sample_rows=0)
    assert none.record["training_sample"] is None
