"""Streams for the demo and the benchmarks, from river's synthetic generators.

Each stream *kind* (:data:`KINDS`) names, once, its generator and parameters, the kind
of drift it has, where its true change points are, the model that serves it (factory
and parameters, chosen for the kind of concept before any result was looked at) and
the segments it really has (Agrawal's education level; no other kind has one):

- ``agrawal``: abrupt; Agrawal functions 0, 2, 5, 8 in turn; ``hoeffding_tree``.
- ``sea``: abrupt; SEA variants 0-3 in turn; ``logistic_regression``.
- ``gradual``: gradual; Agrawal functions 0, 2, 5, 8, each change through river's
  ``ConceptDriftStream``; ``hoeffding_tree``.
- ``hyperplane``: incremental; river's ``Hyperplane``, all 10 weights moving
  (``mag_change = 0.001``, ``sigma = 0.1``, 5% noise); ``logistic_regression``.
- ``rbf``: incremental; ``RandomRBFDrift``, 2 classes, 10 features, 50 centroids all
  moving at 0.0001 per event; ``hoeffding_tree``.
- ``led``: abrupt, 10 classes; ``LEDDrift`` (24 bits, 10% noise) with 0, 3, 5, 7 of the
  7 digit segments swapped with irrelevant bits in turn; ``hoeffding_tree``.
- ``stationary``: no drift; Agrawal function 5 (the hardest of the four) only;
  ``hoeffding_tree``.

Why those models: Agrawal's concepts are rules over thresholds of a few attributes
(trees; the demo's model since issue 6); SEA and Hyperplane label by a threshold on a
weighted sum of the features (linear: logistic regression); RandomRBF's classes are
Gaussian clusters, not linearly separable (trees); LED's bits flip independently, so
naive Bayes is its Bayes-optimal classifier, which a Hoeffding tree's naive-Bayes-
adaptive leaves are (softmax regression could learn the same form; the tree was
chosen, like ARF and HAT, the tree learners it is compared with). Every tree learns
with ``grace_period = 50``, ``delta = 0.01`` (river's 1e-7 needs ~10x the rows to
split) and every model learns its training window 5 times (docs/benchmarks-history.md,
section 2). The incremental generators' parameters were set so that the drift costs a
model frozen after 2,000 events measurably (Hyperplane: 0.87 -> 0.77 over 38,000
events; RandomRBFDrift: 0.74 -> 0.50-0.68).

Abrupt kinds switch concept every ``drift_every`` events, cycling through the kind's
concepts (a fresh generator, seeded ``seed + segment``). ``gradual`` changes at the same
points through river's ``ConceptDriftStream`` (one per change point, centred on it,
sigmoid ``width = drift_every // 5``: 12% -> 88% of the new concept over ``width``
events). The incremental kinds drift a little with every event and have no change
point (``drift_every`` does not apply). Binary labels are bools, LED's classes ints 0-9;
every feature is a float (river's Agrawal mixes int 0 and floats in one feature).

>>> rows = list(drifting_stream("sea", n=4, drift_every=2, seed=1))
>>> [(r.index, r.concept) for r in rows]
[(0, 'sea-0'), (1, 'sea-0'), (2, 'sea-1'), (3, 'sea-1')]
>>> sorted(rows[0].features), rows[0].segment
(['x0', 'x1', 'x2'], {})
>>> r = next(drifting_stream("agrawal", n=1, drift_every=1, seed=1))
>>> r.segment, type(r.label).__name__
({'elevel': '0'}, 'bool')
>>> sorted({type(r.label).__name__ for r in drifting_stream("led", 50, 25, seed=1)})
['int']
>>> change_points("hyperplane", 10, 4), change_points("gradual", 10, 4)
([], [4, 8])
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Dataset = Any
"""A river synthetic dataset (river leaves its generators unannotated)."""
Sample = tuple[dict[Any, Any], Any]
DRIFTS = ("abrupt", "gradual", "incremental", "none")
TREE = "grace_period = 50\ndelta = 0.01\nepochs = 5"
LINEAR = "epochs = 5"


@dataclass(frozen=True, slots=True)
class Row:
    """One event of a synthetic stream."""

    index: int
    features: dict[str, Any]
    label: Any
    """A bool (binary kinds) or an int class."""
    concept: str
    """The concept in force (for a gradual change: the nearer one)."""
    segment: Mapping[str, str] = field(default_factory=dict)


def _synth() -> Any:
    """river's generators, imported when a stream is made (the CLI lists the kinds)."""
    from river.datasets import synth

    return synth


def _agrawal(concept: int, seed: int) -> Dataset:
    return _synth().Agrawal(classification_function=concept, seed=seed)


def _sea(concept: int, seed: int) -> Dataset:
    return _synth().SEA(variant=concept, seed=seed)


def _hyperplane(concept: int, seed: int) -> Dataset:
    return _synth().Hyperplane(seed=seed, n_features=10, n_drift_features=10, mag_change=0.001,
                            noise_percentage=0.05, sigma=0.1)  # fmt: skip


def _rbf(concept: int, seed: int) -> Dataset:
    return _synth().RandomRBFDrift(
        seed_model=seed, seed_sample=seed + 1, n_classes=2, n_features=10, n_centroids=50,
        change_speed=0.0001, n_drift_centroids=50,
    )  # fmt: skip


def _led(concept: int, seed: int) -> Dataset:
    return _synth().LEDDrift(seed=seed, noise_percentage=0.1, irrelevant_features=True,
                          n_drift_features=concept)  # fmt: skip


def _elevel(features: Mapping[str, Any]) -> dict[str, str]:
    return {"elevel": str(int(features["elevel"]))}


def _none(features: Mapping[str, Any]) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class StreamKind:
    """One kind of stream and the model that serves it."""

    name: str
    drift: str
    """abrupt, gradual, incremental or none (see :data:`DRIFTS`)."""
    generator: Callable[[int, int], Dataset]
    """(concept, seed) -> the river dataset of that concept."""
    concepts: tuple[int, ...]
    factory: str
    params: str
    """The model's ``[params]`` table, TOML."""
    segment: Callable[[Mapping[str, Any]], dict[str, str]] = _none
    binary: bool = True
    about: str = ""

    def __post_init__(self) -> None:
        if self.drift not in DRIFTS:
            raise ValueError(f"drift must be one of {DRIFTS}, not {self.drift!r}")


KINDS: dict[str, StreamKind] = {
    k.name: k
    for k in (
        StreamKind("agrawal", "abrupt", _agrawal, (0, 2, 5, 8), "hoeffding_tree", TREE,
                   _elevel, about="Agrawal functions 0, 2, 5, 8"),
        StreamKind("sea", "abrupt", _sea, (0, 1, 2, 3), "logistic_regression", LINEAR,
                   about="SEA variants 0-3"),
        StreamKind("gradual", "gradual", _agrawal, (0, 2, 5, 8), "hoeffding_tree", TREE,
                   _elevel, about="Agrawal functions 0, 2, 5, 8, each change through "
                   "ConceptDriftStream, width drift_every / 5"),
        StreamKind("hyperplane", "incremental", _hyperplane, (0,), "logistic_regression",
                   LINEAR, about="Hyperplane, 10 features all drifting, mag_change 0.001, "
                   "sigma 0.1, 5% noise"),
        StreamKind("rbf", "incremental", _rbf, (0,), "hoeffding_tree", TREE,
                   about="RandomRBFDrift, 2 classes, 10 features, 50 centroids all moving "
                   "at 0.0001 per event"),
        StreamKind("led", "abrupt", _led, (0, 3, 5, 7), "hoeffding_tree", TREE,
                   binary=False, about="LEDDrift, 10 classes, 24 bits, 10% noise, "
                   "0, 3, 5, 7 digit segments swapped with irrelevant bits"),
        StreamKind("stationary", "none", _agrawal, (5,), "hoeffding_tree", TREE, _elevel,
                   about="Agrawal function 5 (the hardest of the four) only"),
    )
}  # fmt: skip
"""Every stream kind by name."""


def kind(name: str) -> StreamKind:
    """The stream kind called ``name``; a ValueError names the others."""
    if name not in KINDS:
        raise ValueError(f"stream must be one of {sorted(KINDS)}, not {name!r}")
    return KINDS[name]


def _name(key: Any) -> str:
    return key if isinstance(key, str) else f"x{key}"  # SEA, LED, ... number their features


def _segments(k: StreamKind, n: int, drift_every: int, seed: int,
              concepts: tuple[int, ...]) -> Iterator[tuple[str, Sample]]:  # fmt: skip
    """(concept name, sample) for the ``n`` events."""

    def named(c: int) -> str:
        return f"{k.name}-{c}"

    if k.drift in ("incremental", "none") or len(concepts) == 1:
        gen = k.generator(concepts[0], seed)
        yield from ((named(concepts[0]), s) for s in itertools.islice(iter(gen), n))
        return
    if k.drift == "abrupt":
        index = 0
        for segment in itertools.count():
            c = concepts[segment % len(concepts)]
            gen = iter(k.generator(c, seed + segment))
            for s in itertools.islice(gen, min(drift_every, n - index)):
                yield named(c), s
                index += 1
            if index >= n:
                return
    # gradual: pure first concept up to the first window, one ConceptDriftStream per
    # change point over [point - drift_every/2, point + drift_every/2), pure after the last
    half, width = drift_every // 2, transition(k.name, drift_every)
    points = change_points(k.name, n, drift_every)
    index = points[0] - half if points else n
    first = iter(k.generator(concepts[0], seed))
    yield from ((named(concepts[0]), s) for s in itertools.islice(first, index))
    for j, point in enumerate(points):
        old, new = concepts[j % len(concepts)], concepts[(j + 1) % len(concepts)]
        mixed = _synth().ConceptDriftStream(
            stream=k.generator(old, seed + 1_000 + j),
            drift_stream=k.generator(new, seed + 2_000 + j),
            position=half + 1, width=width, seed=seed + j,
        )  # fmt: skip
        for s in itertools.islice(iter(mixed), min(n, point + half) - index):
            yield named(old if index < point else new), s
            index += 1
    last = concepts[len(points) % len(concepts)]
    for s in itertools.islice(iter(k.generator(last, seed + 3_000)), n - index):
        yield named(last), s


def drifting_stream(
    name: str, n: int, drift_every: int, seed: int = 42, concepts: Sequence[int] | None = None
) -> Iterator[Row]:
    """``n`` events of stream kind ``name``: a concept change every ``drift_every`` events
    (abrupt or gradual kinds), cycling through ``concepts`` (default the kind's; one
    concept: stationary).

    >>> {r.concept for r in drifting_stream("agrawal", 6, drift_every=2, concepts=[5])}
    {'agrawal-5'}
    """
    if n < 0 or drift_every < 1:
        raise ValueError("n must be >= 0 and drift_every >= 1")
    k = kind(name)
    concepts = k.concepts if concepts is None else tuple(concepts)
    if not concepts:
        raise ValueError("concepts must not be empty")
    for index, (concept, (x, y)) in enumerate(_segments(k, n, drift_every, seed, concepts)):
        features = {_name(key): float(v) for key, v in x.items()}  # one type per feature
        label = bool(y) if k.binary else int(y)
        yield Row(index, features, label, concept, k.segment(features))


def change_points(name: str, n: int, drift_every: int) -> list[int]:
    """Indexes of the true concept changes of ``n`` events of kind ``name`` (the centre of
    a gradual change; none for incremental drift or a stationary stream)."""
    if kind(name).drift in ("incremental", "none"):
        return []
    return drift_points(n, drift_every)


def transition(name: str, drift_every: int) -> int:
    """The sigmoid width of kind ``name``'s changes (0: abrupt or none).

    >>> transition("gradual", 7_500), transition("agrawal", 7_500)
    (1500, 0)
    """
    return max(1, drift_every // 5) if kind(name).drift == "gradual" else 0


def drift_points(n: int, drift_every: int) -> list[int]:
    """Indexes at which an abrupt stream's concept changes.

    >>> drift_points(10, 4)
    [4, 8]
    """
    return list(range(drift_every, n, drift_every))
