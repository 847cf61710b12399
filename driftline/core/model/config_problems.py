"""What is wrong with a models file: problems with their key and line, and the checks that
every section shares (value types from annotations, unknown keys with a suggestion).

A :class:`Problem` names the dotted key (``models.churn.retrain.min_rws``), the model and
the reason; :func:`locate` finds the line of a key in the TOML text (``tomllib`` keeps no
positions, so the text is scanned for table headers and ``key =`` lines: a best effort
that knows ``[table]``, ``[[array.of.tables]]``, dotted and quoted keys and inline tables,
not keys inside multi-line strings). :class:`ModelsFileError` carries every problem of a
file.

>>> text = '''[models.churn]
... task = "classification"
... [models.churn.retrain]
... min_rws = 300
... '''
>>> lines = locate(text)
>>> lines[("models", "churn", "retrain", "min_rws")], line_of(lines, ("models", "churn", "x"))
(4, 1)
>>> type_error(300, int), type_error("300", int), type_error(True, float)
(None, 'must be an integer, not the string "300"', 'must be a number, not the boolean true')
>>> unknown_key("min_rws", ["min_rows", "max_rows", "last_n"])
'unknown key (did you mean min_rows?)'
"""

from __future__ import annotations

import difflib
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from driftline.core.errors import ConfigError

__all__ = [
    "Found",
    "ModelsFileError",
    "Problem",
    "checked_keys",
    "describe",
    "key_in_message",
    "line_of",
    "locate",
    "type_error",
    "unknown_key",
]

Path = tuple[str | int, ...]
"""A key's path in the TOML document: table names, keys and array indexes."""
Found = list[tuple[Path, str]]
"""Problems of one model as (path below ``models.NAME``, reason)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One mistake in a models file."""

    key: str
    """Dotted path of the key (``models.churn.gate.holdout_fraction``); array items as
    ``features[2]``."""
    reason: str
    model: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = self.key if self.line is None else f"{self.key} (line {self.line})"
        return f"{where}: {self.reason}"


class ModelsFileError(ConfigError):
    """A models file (or a model configuration built in code) with problems; ``problems``
    holds all of them, in file order."""

    def __init__(self, problems: Sequence[Problem], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        n = len(self.problems)
        head = f"models file {source}" if source else "model configuration"
        joined = "; ".join(str(p) for p in self.problems)
        super().__init__(f"{head} refused ({n} error{'s' if n != 1 else ''}): {joined}")


def dotted(path: Path) -> str:
    """``("models", "churn", "features", 2, "type")`` -> ``models.churn.features[2].type``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            bare = re.fullmatch(r"[A-Za-z0-9_-]+", part) is not None
            name = part if bare else '"' + part.replace('"', '\\"') + '"'
            out += f".{name}" if out else name
    return out


# -- lines -----------------------------------------------------------------------------

_KEY = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_DOTTED = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_HEADER = re.compile(rf"^\s*(\[\[?)\s*({_DOTTED})\s*\]\]?\s*(?:#.*)?$")
_ASSIGN = re.compile(rf"^\s*({_DOTTED})\s*=")
_INLINE = re.compile(rf"({_DOTTED})\s*=")


def _parts(keys: str) -> list[str]:
    out = []
    for m in re.finditer(_KEY, keys):
        k = m.group(0)
        out.append(k[1:-1] if k[0] in "\"'" else k)
    return out


def locate(text: str) -> dict[Path, int]:
    """The first line (1-based) of every table header and key of ``text``."""
    lines: dict[Path, int] = {}
    table: Path = ()
    arrays: dict[Path, int] = {}
    for n, raw in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(raw)
        if header:
            path: Path = tuple(_parts(header.group(2)))
            if header.group(1) == "[[":
                arrays[path] = arrays.get(path, -1) + 1
                path = (*path, arrays[path])
            else:  # a sub-table of an array of tables belongs to its last item
                for i in range(len(path) - 1, 0, -1):
                    if path[:i] in arrays:
                        path = (*path[:i], arrays[path[:i]], *path[i:])
                        break
            table = path
            for i in range(1, len(table) + 1):
                lines.setdefault(table[:i], n)
            continue
        assign = _ASSIGN.match(raw)
        if assign:
            key = (*table, *_parts(assign.group(1)))
            lines.setdefault(key, n)
            rest = raw[assign.end() :]
            if rest.lstrip().startswith("{"):  # an inline table on one line
                for inner in _INLINE.finditer(rest):
                    lines.setdefault((*key, *_parts(inner.group(1))), n)
    return lines


def line_of(lines: Mapping[Path, int], path: Path) -> int | None:
    """The line of ``path``, else of its longest prefix that has one (None: none)."""
    for i in range(len(path), 0, -1):
        found = lines.get(tuple(path[:i]))
        if found is not None:
            return found
    return None


# -- values ----------------------------------------------------------------------------


def _show(value: object) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f'the string "{text}"'
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"


def describe(tp: Any) -> str:
    """What an annotation asks for, in words (TOML has no null: None is left out)."""
    if tp is Any:
        return "any value"
    args = typing.get_args(tp)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        arms = [describe(a) for a in args if a is not type(None)]
        return " or ".join(dict.fromkeys(arms))
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        item = describe(args[0]) if args else "any value"
        return f"a list of {_plural(item)}"
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        return "a table"
    return getattr(tp, "__name__", str(tp))


def _plural(item: str) -> str:
    words = {"an integer": "integers", "a number": "numbers", "a string": "strings"}
    return words.get(item, item)


def _matches(value: Any, tp: Any) -> bool:
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if not isinstance(value, list):
            return False
        return not args or all(_matches(v, args[0]) for v in value)
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        return isinstance(value, dict)
    return isinstance(value, tp) if isinstance(tp, type) else True


def _arms(tp: Any) -> tuple[Any, ...]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return (tp,)


def type_error(value: Any, tp: Any) -> str | None:
    """Why ``value`` (as TOML read it) does not fit annotation ``tp``; None when it does.
    A float must be finite."""
    if not _matches(value, tp):
        if isinstance(value, list) and any(_matches([], t) for t in _arms(tp)):
            for i, item in enumerate(value):
                if not any(_matches([item], t) for t in _arms(tp)):
                    return f"must be {describe(tp)}; item {i} is {_show(item)}"
        return f"must be {describe(tp)}, not {_show(value)}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, not {value}"
    return None


def unknown_key(key: str, known: Iterable[str]) -> str:
    """The reason for an unknown key, with the closest known one when there is one (the
    equally close ones when several are: ``holdout`` is as near ``holdout_fraction`` as
    ``min_holdout_rows``).

    >>> unknown_key("holdout", ["holdout_fraction", "min_holdout_rows", "min_improvement"])
    'unknown key (did you mean holdout_fraction or min_holdout_rows?)'
    """
    names = sorted(known)
    close = difflib.get_close_matches(key, names, n=len(names) or 1, cutoff=0.6)
    if close:

        def ratio(name: str) -> float:
            return difflib.SequenceMatcher(None, key, name).ratio()

        best = sorted(c for c in close if ratio(c) == ratio(close[0]))
        return f"unknown key (did you mean {' or '.join(best)}?)"
    return f"unknown key (known: {', '.join(names)})"


def key_in_message(message: str, keys: Iterable[str]) -> str | None:
    """The key among ``keys`` that ``message`` names first (as a whole word), if any: maps
    a constructor's ``ValueError`` to the key it is about."""
    best: tuple[int, str] | None = None
    for k in keys:
        m = re.search(rf"(?<![A-Za-z0-9_]){re.escape(k)}(?![A-Za-z0-9_])", message)
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), k)
    return None if best is None else best[1]


def checked_keys(
    section: Path, table: Mapping[str, Any], hints: Mapping[str, Any], found: Found
) -> dict[str, Any]:
    """The keys of ``table`` that ``hints`` knows, with values of the annotated type; a
    problem in ``found`` for each of the others (``section`` prefixes their paths)."""
    good = {}
    for key, value in table.items():
        if key not in hints:
            found.append(((*section, key), unknown_key(key, hints)))
            continue
        why = type_error(value, hints[key])
        if why is not None:
            found.append(((*section, key), why))
            continue
        good[key] = value
    return good
