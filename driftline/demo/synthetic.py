"""Drifting streams for the demo and the benchmarks, from river's synthetic generators.

A stream switches concept abruptly every ``drift_every`` events: Agrawal cycles through
classification functions 0, 2, 5, 8; SEA through variants 0, 1, 2, 3. Every feature is a float
(river's Agrawal mixes int 0 and floats in one feature), labels are bools.

>>> rows = list(drifting_stream("sea", n=4, drift_every=2, seed=1))
>>> [(r.index, r.concept) for r in rows]
[(0, 'sea-0'), (1, 'sea-0'), (2, 'sea-1'), (3, 'sea-1')]
>>> sorted(rows[0].features)
['x0', 'x1', 'x2']
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from river.datasets import synth

KINDS = ("agrawal", "sea")
CONCEPTS = {"agrawal": (0, 2, 5, 8), "sea": (0, 1, 2, 3)}


@dataclass(frozen=True, slots=True)
class Row:
    """One event of a synthetic stream."""

    index: int
    features: dict[str, Any]
    label: bool
    concept: str


def _name(key: Any) -> str:
    return key if isinstance(key, str) else f"x{key}"  # SEA numbers its features


def _generator(kind: str, concept: int, seed: int) -> Iterator[tuple[dict[str, Any], Any]]:
    if kind == "agrawal":
        return iter(synth.Agrawal(classification_function=concept, seed=seed))
    if kind == "sea":
        return iter(synth.SEA(variant=concept, seed=seed))
    raise ValueError(f"stream must be one of {KINDS}, not {kind!r}")


def drifting_stream(
    kind: str, n: int, drift_every: int, seed: int = 42, concepts: Sequence[int] | None = None
) -> Iterator[Row]:
    """``n`` events of ``kind`` with an abrupt concept change every ``drift_every``, cycling
    through ``concepts`` (default :data:`CONCEPTS` of ``kind``; one concept: stationary).

    >>> {r.concept for r in drifting_stream("agrawal", 6, drift_every=2, concepts=[5])}
    {'agrawal-5'}
    """
    if n < 0 or drift_every < 1:
        raise ValueError("n must be >= 0 and drift_every >= 1")
    if kind not in CONCEPTS:
        raise ValueError(f"stream must be one of {KINDS}, not {kind!r}")
    concepts = CONCEPTS[kind] if concepts is None else tuple(concepts)
    if not concepts:
        raise ValueError("concepts must not be empty")
    index = 0
    for segment in itertools.count():
        concept = concepts[segment % len(concepts)]
        gen = _generator(kind, concept, seed + segment)
        for x, y in itertools.islice(gen, min(drift_every, n - index)):
            features = {_name(k): float(v) for k, v in x.items()}  # one type per feature
            yield Row(index, features, bool(y), f"{kind}-{concept}")
            index += 1
        if index >= n:
            return


def drift_points(n: int, drift_every: int) -> list[int]:
    """Indexes at which the concept changes.

    >>> drift_points(10, 4)
    [4, 8]
    """
    return list(range(drift_every, n, drift_every))
