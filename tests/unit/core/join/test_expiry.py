"""The expiry index: tables of (adds, discards, sweeps) and the keys each sweep returns."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from driftline.core.errors import ConfigError
from driftline.core.join.expiry import ExpiryIndex

Keys = list[tuple[str, int]]
CASES: list[tuple[str, Keys, Keys, list[tuple[int, list[str]]]]] = [
    ("nothing due", [("a", 1500)], [], [(1000, []), (1998, [])]),
    ("due at end of its bucket", [("a", 1500)], [], [(1999, ["a"]), (5000, [])]),
    ("deadline on a bucket edge", [("a", 1000)], [], [(1000, []), (1999, ["a"])]),
    ("sweeps in order", [("b", 2500), ("a", 1500)], [], [(2999, ["a", "b"])]),
    ("one bucket at a time", [("a", 1500), ("b", 2500)], [], [(2000, ["a"]), (3000, ["b"])]),
    ("discarded key", [("a", 1500), ("b", 1600)], [("a", 1500)], [(2000, ["b"])]),
    ("discard unknown is a no-op", [("a", 1500)], [("z", 9000), ("a", 7)], [(2000, ["a"])]),
    ("negative deadlines", [("a", -1500)], [], [(-1001, ["a"])]),
]


@pytest.mark.parametrize(("case", "adds", "discards", "sweeps"), CASES, ids=[c[0] for c in CASES])
def test_expiry_index(
    case: str,
    adds: list[tuple[str, int]],
    discards: list[tuple[str, int]],
    sweeps: list[tuple[int, list[str]]],
) -> None:
    index = ExpiryIndex[str](bucket_ms=1000)
    for key, deadline in adds:
        index.add(key, deadline)
    for key, deadline in discards:
        index.discard(key, deadline)
    for now, keys in sweeps:
        assert sorted(index.due(now)) == keys


@pytest.mark.parametrize("bucket_ms", [0, -5])
def test_bucket_must_be_positive(bucket_ms: int) -> None:
    with pytest.raises(ConfigError):
        ExpiryIndex[str](bucket_ms)


@given(
    st.dictionaries(st.integers(0, 500), st.integers(0, 100_000)),
    st.integers(1, 5000),
    st.integers(0, 110_000),
)
def test_due_is_exactly_what_passed_within_one_bucket(
    deadlines: dict[int, int], bucket_ms: int, now: int
) -> None:
    index = ExpiryIndex.rebuild(deadlines.items(), bucket_ms)
    assert len(index) == len(deadlines)
    due = set(index.due(now))
    assert all(deadlines[k] <= now for k in due)  # never early
    late_by_a_bucket = now - bucket_ms + 1
    assert all(k in due for k, d in deadlines.items() if d <= late_by_a_bucket)
    assert len(index) == len(deadlines) - len(due)
