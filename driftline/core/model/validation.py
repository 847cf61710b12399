"""Validate decoded events against a model version's feature spec.

A :class:`Spec` is compiled once per model version from its Avro ``FeatureSpec``
records into one small checking function per feature, so :meth:`Spec.check` costs a
few microseconds per event. Values are taken as Avro decodes them (None, bool, int,
float, str). :meth:`Spec.check` raises :class:`~driftline.core.errors.ValidationError`
for the first problem, looking at the spec's features in spec order, then at names
the spec does not know. :meth:`Spec.conform` is what the scorer calls: the same check,
but it takes the values Apache Avro's own Python writer sends for ints and bools (see
below) as the ints and bools they were. Reason codes:

================== ===========================================================
missing_feature    a required feature is absent or null
unexpected_feature a name the spec does not know (unless ``allow_extra``)
type_mismatch      number: int or float, never bool; integer: int only (check),
                   or a whole double (conform); boolean: bool (check), or 0.0
                   or 1.0 (conform); category: str
non_finite         NaN or +-inf in a number
out_of_range       below ``min`` or above ``max`` (number, integer)
unseen_category    a category outside ``categories`` (empty means any)
================== ===========================================================

The envelope of an event and a label's value are checked in
:mod:`driftline.core.wire.envelope`.

Why :meth:`Spec.conform` takes doubles for ints and bools: the feature map's values are
the union ``["null", "boolean", "long", "double", "string"]``. Apache Avro's Python
library (``avro``, its default ``DatumWriter``) writes a union value with the *last*
branch that accepts it, and a Python int or bool is accepted by ``double``: it writes
``41`` as ``41.0`` and ``True`` as ``1.0``. fastavro and Java's ``GenericDatumWriter``
take the branch of the value's type. A whole double for an integer feature, and 0.0 or
1.0 for a boolean one, can only mean that int or bool: the scorer takes it as such (and
the Prediction carries the int or bool). Anything else is a type_mismatch whose detail
says what arrived, what the spec expects and how to write it (docs/wire-format.md).

>>> spec = Spec.from_dicts([
...     {"name": "age", "type": "integer", "min": 0.0, "max": 130.0},
...     {"name": "country", "type": "category", "categories": ["de", "fr"]},
... ])
>>> spec.check({"age": 42, "country": "fr"})
>>> spec.conform({"age": 42.0, "country": "fr"})  # what Apache avro's Python writer sends
{'age': 42, 'country': 'fr'}
>>> try:
...     spec.conform({"age": 42.5, "country": "fr"})
... except ValidationError as e:
...     print(e.reason, "|", e.detail)  # doctest: +NORMALIZE_WHITESPACE
type_mismatch | feature 'age' = 42.5: expected integer (an Avro long), got a double that
is not whole; write a long (a Python int, a java.lang.Long)
>>> [e.reason for e in spec.check_all({"age": -1, "country": "uk", "x": 1})]
['out_of_range', 'unseen_category', 'unexpected_feature']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from driftline.core.errors import ConfigError, ValidationError

__all__ = ["FEATURE_TYPES", "FeatureSpec", "Spec", "ValidationError"]

FEATURE_TYPES = ("number", "integer", "boolean", "category")
_SHOW = 80
_INF = math.inf
_EXACT = 2**53  # doubles are whole and exact up to here
_ABSENT: Any = object()

_Rule = Callable[[Any], "str | None"]


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOW else text[: _SHOW - 3] + "..."


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """What one feature must look like: the Avro ``FeatureSpec`` record."""

    name: str
    type: str
    required: bool = True
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in FEATURE_TYPES:
            raise ConfigError(f"feature {self.name!r}: type must be one of {FEATURE_TYPES}")
        numeric = self.type in ("number", "integer")
        for bound in (self.min, self.max):
            if bound is not None and (not numeric or math.isnan(bound)):
                raise ConfigError(f"feature {self.name!r}: min/max need a numeric type and value")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ConfigError(f"feature {self.name!r}: min {self.min} > max {self.max}")
        if self.categories and self.type != "category":
            raise ConfigError(f"feature {self.name!r}: categories need type 'category'")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureSpec:
        """Build from an Avro ``FeatureSpec`` dict (defaults as in the schema)."""
        lo, hi = d.get("min"), d.get("max")
        return cls(
            name=d["name"],
            type=d["type"],
            required=bool(d.get("required", True)),
            min=None if lo is None else float(lo),
            max=None if hi is None else float(hi),
            categories=tuple(d.get("categories", ())),
        )

    def to_dict(self) -> dict[str, Any]:
        """The Avro ``FeatureSpec`` dict."""
        return {
            "name": self.name,
            "type": self.type,
            "required": self.required,
            "min": self.min,
            "max": self.max,
            "categories": list(self.categories),
        }

    def rule(self) -> _Rule:
        """A function returning the reason code a present, non-null value breaks, or None."""
        lo = -_INF if self.min is None else self.min
        hi = _INF if self.max is None else self.max
        if self.type == "number":
            return _number_rule(lo, hi)
        if self.type == "integer":
            return _integer_rule(lo, hi)
        if self.type == "boolean":
            return _boolean_rule
        return _category_rule(frozenset(self.categories))

    def error(self, reason: str, value: object = None) -> ValidationError:
        """The ValidationError for ``reason`` (cold path: only built on failure)."""
        if reason == "missing_feature":
            return ValidationError(reason, f"feature {_show(self.name)} is required")
        if reason == "type_mismatch":
            why = _mismatch(self.type, value)
        elif reason == "non_finite":
            why = "must be finite"
        elif reason == "out_of_range":
            why = f"must be within [{self.min}, {self.max}]"
        else:
            why = f"must be one of {_show(sorted(self.categories))}"
        return ValidationError(reason, f"feature {_show(self.name)} = {_show(value)}: {why}")


_BRANCH = {bool: "boolean", int: "long", float: "double", str: "string"}
_WRITE = {
    "number": "a double or a long",
    "integer": "a long (a Python int, a java.lang.Long)",
    "boolean": "a boolean (a Python bool, a java.lang.Boolean)",
    "category": "a string",
}
_EXPECT = {
    "number": "an Avro double or long",
    "integer": "an Avro long",
    "boolean": "an Avro boolean",
    "category": "an Avro string",
}


def _mismatch(expected: str, value: object) -> str:
    """What arrived, what the spec expects and how to write it (a type_mismatch)."""
    branch = next((b for t, b in _BRANCH.items() if isinstance(value, t)), None)
    got = f"a {branch}" if branch else f"a {type(value).__name__}"
    if branch == "double" and expected == "integer":
        got = "a double that is not whole"
    elif branch == "double" and expected == "boolean":
        got = "a double other than 0.0 or 1.0"
    return f"expected {expected} ({_EXPECT[expected]}), got {got}; write {_WRITE[expected]}"


def _number_rule(lo: float, hi: float) -> _Rule:
    def rule(v: Any) -> str | None:
        t = type(v)
        if t is float:
            if not math.isfinite(v):
                return "non_finite"
        elif t is not int:
            if isinstance(v, bool) or not isinstance(v, int | float):
                return "type_mismatch"
            if isinstance(v, float) and not math.isfinite(v):
                return "non_finite"
        return None if lo <= v <= hi else "out_of_range"

    return rule


def _integer_rule(lo: float, hi: float) -> _Rule:
    def rule(v: Any) -> str | None:
        if type(v) is not int and (isinstance(v, bool) or not isinstance(v, int)):
            return "type_mismatch"
        return None if lo <= v <= hi else "out_of_range"

    return rule


def _boolean_rule(v: Any) -> str | None:
    return None if type(v) is bool else "type_mismatch"


def _category_rule(categories: frozenset[str]) -> _Rule:
    def rule(v: Any) -> str | None:
        if type(v) is not str and not isinstance(v, str):
            return "type_mismatch"
        return "unseen_category" if categories and v not in categories else None

    return rule


@dataclass(frozen=True, slots=True)
class Spec:
    """A model version's features, compiled once for fast checks.

    ``allow_extra`` (not part of the Avro record; a per-deployment setting) lets events
    carry names the spec does not know.
    """

    features: tuple[FeatureSpec, ...]
    allow_extra: bool = False
    _rules: tuple[tuple[str, bool, _Rule, FeatureSpec], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(self.features))
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ConfigError(f"duplicate feature names in spec: {sorted(names)}")
        rules = tuple((f.name, f.required, f.rule(), f) for f in self.features)
        object.__setattr__(self, "_rules", rules)

    @classmethod
    def from_dicts(cls, dicts: Iterable[Mapping[str, Any]], allow_extra: bool = False) -> Spec:
        """Compile the Avro ``feature_spec`` array of a ModelVersion."""
        return cls(tuple(FeatureSpec.from_dict(d) for d in dicts), allow_extra)

    def to_dicts(self) -> list[dict[str, Any]]:
        """The Avro ``feature_spec`` array."""
        return [f.to_dict() for f in self.features]

    @property
    def names(self) -> frozenset[str]:
        """The feature names of the spec."""
        return frozenset(f.name for f in self.features)

    def check(self, features: Mapping[str, object]) -> None:
        """Raise ValidationError for the first problem of ``features``; return None if valid."""
        seen = 0
        for name, required, rule, spec in self._rules:
            v = features.get(name, _ABSENT)
            if v is _ABSENT or v is None:
                if required:
                    raise spec.error("missing_feature")
                seen += v is None
                continue
            seen += 1
            reason = rule(v)
            if reason is not None:
                raise spec.error(reason, v)
        if seen != len(features) and not self.allow_extra:
            raise self._extras(features)[0]

    def conform(self, features: Mapping[str, object]) -> Mapping[str, object]:
        """``features`` if they pass :meth:`check`; else, when Apache avro's Python writer
        turned ints and bools into doubles (module docstring), a new dict with them as
        int and bool if that passes; else the first problem of the values so taken.

        >>> spec = Spec.from_dicts([{"name": "n", "type": "integer"},
        ...                         {"name": "b", "type": "boolean"}])
        >>> spec.conform({"n": 3.0, "b": 1.0})
        {'n': 3, 'b': True}
        """
        try:
            self.check(features)
            return features
        except ValidationError as exc:
            if exc.reason != "type_mismatch":
                raise
            fixed = self._undone(features)
            if fixed is None:
                raise
        self.check(fixed)  # what is wrong with the values as taken, if anything
        return fixed

    def _undone(self, features: Mapping[str, object]) -> dict[str, object] | None:
        """``features`` with whole doubles of integer features as ints and 0.0 / 1.0 of
        boolean features as bools; None when no value is such a double."""
        fixed: dict[str, object] | None = None
        for name, _, _, spec in self._rules:
            v = features.get(name)
            if type(v) is not float or spec.type not in ("integer", "boolean"):
                continue
            if spec.type == "integer" and v.is_integer() and abs(v) <= _EXACT:
                new: object = int(v)
            elif spec.type == "boolean" and v in (0.0, 1.0):
                new = v == 1.0
            else:
                continue
            if fixed is None:
                fixed = dict(features)
            fixed[name] = new
        return fixed

    def check_all(self, features: Mapping[str, object]) -> list[ValidationError]:
        """Every problem of ``features`` (for reports), in the order :meth:`check` looks."""
        errors = []
        for name, required, rule, spec in self._rules:
            v = features.get(name)
            reason = ("missing_feature" if required else None) if v is None else rule(v)
            if reason is not None:
                errors.append(spec.error(reason, v))
        if not self.allow_extra:
            errors.extend(self._extras(features))
        return errors

    def _extras(self, features: Mapping[str, object]) -> list[ValidationError]:
        known = self.names
        return [
            ValidationError(
                "unexpected_feature", f"feature {_show(n)} = {_show(v)}: is not in the spec"
            )
            for n, v in features.items()
            if n not in known
        ]

    @classmethod
    def infer(
        cls,
        rows: Iterable[Mapping[str, Any]],
        *,
        margin: float | None = None,
        max_categories: int = 50,
        allow_extra: bool = False,
    ) -> Spec:
        """Infer a spec from training feature dicts, features sorted by name.

        Types: only bools -> boolean, only ints -> integer, ints and floats -> number,
        only strs -> category; a feature with mixed or no non-null values is a
        ConfigError. ``required`` when present and non-null in every row.
        ``categories``: the values seen when there are at most ``max_categories``,
        else empty (any value).

        Bounds are left None by default: training data shows where values were, not
        where they may be, and an event that is only drifted must still be scored
        (drift is the monitor's job, not a reason to dead-letter). With ``margin``
        the seen ``[lo, hi]`` is widened by ``margin * (hi - lo)`` on each side
        (``margin * max(|lo|, 1)`` when all values are equal), rounded outwards for
        integers. NaN and +-inf never count towards bounds and are never accepted.

        >>> rows = [{"n": 1, "x": 0.5, "c": "a"}, {"n": 3, "x": 1.5, "c": "b", "f": True}]
        >>> [(f.name, f.type, f.required, f.min, f.max, f.categories)
        ...  for f in Spec.infer(rows, margin=0.5).features]  # doctest: +NORMALIZE_WHITESPACE
        [('c', 'category', True, None, None, ('a', 'b')), ('f', 'boolean', False, None, None, ()),
         ('n', 'integer', True, 0.0, 4.0, ()), ('x', 'number', True, 0.0, 2.0, ())]
        """
        if margin is not None and not margin >= 0:
            raise ConfigError(f"margin must be >= 0, got {margin}")
        stats: dict[str, _Seen] = {}
        n = 0
        for row in rows:
            n += 1
            for name, v in row.items():
                seen = stats.get(name)
                if seen is None:
                    seen = stats[name] = _Seen(max_categories)
                seen.add(v)
        return cls(tuple(stats[k].spec(k, n, margin) for k in sorted(stats)), allow_extra)


class _Seen:
    """What :meth:`Spec.infer` saw of one feature."""

    __slots__ = ("cap", "cats", "count", "hi", "kinds", "lo")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.kinds: set[str] = set()
        self.count = 0
        self.lo = _INF
        self.hi = -_INF
        self.cats: set[str] | None = set()

    def add(self, v: object) -> None:
        if v is None:
            return
        self.count += 1
        if isinstance(v, bool):
            self.kinds.add("boolean")
        elif isinstance(v, int | float):
            self.kinds.add("integer" if isinstance(v, int) else "number")
            if isinstance(v, int) or math.isfinite(v):
                self.lo = min(self.lo, v)
                self.hi = max(self.hi, v)
        elif isinstance(v, str):
            self.kinds.add("category")
            if self.cats is not None:
                self.cats.add(v)
                if len(self.cats) > self.cap:
                    self.cats = None
        else:
            self.kinds.add(type(v).__name__)

    def spec(self, name: str, rows: int, margin: float | None) -> FeatureSpec:
        found = {"number"} if self.kinds == {"integer", "number"} else self.kinds
        if len(found) != 1 or not found <= set(FEATURE_TYPES):
            raise ConfigError(f"cannot infer a type for feature {name!r}: saw {sorted(found)}")
        (kind,) = found
        lo = hi = None
        if margin is not None and kind in ("number", "integer") and self.lo <= self.hi:
            lo, hi = _widen(self.lo, self.hi, margin, kind == "integer")
        cats = tuple(sorted(self.cats)) if kind == "category" and self.cats else ()
        return FeatureSpec(name, kind, self.count == rows, lo, hi, cats)


def _widen(lo: float, hi: float, margin: float, integer: bool) -> tuple[float | None, float | None]:
    try:
        span = hi - lo
        pad = margin * (span if span > 0 else max(abs(lo), 1.0))
        wlo, whi = float(lo - pad), float(hi + pad)
    except OverflowError:
        return None, None
    if not math.isfinite(wlo) or not math.isfinite(whi):
        return None, None
    if integer:
        return float(math.floor(wlo)), float(math.ceil(whi))
    return wlo, whi
