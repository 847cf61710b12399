"""The one table and the one time formatter of every ``driftline`` command (pure).

>>> table([("MODEL", "STAGE"), ("churn", "champion")])
['MODEL  STAGE', 'churn  champion']
>>> when(1_700_000_000_123), when(1_700_000_000_123, precise=False), when(None)
('2023-11-14T22:13:20.123Z', '2023-11-14 22:13:20', '-')
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

__all__ = ["table", "when"]


def table(rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """Left-aligned columns two spaces apart, each line stripped on the right; the first
    row is the header. Every row has the header's number of cells.

    >>> table([("A", "BB"), ("ccc", "d")], indent="  ")
    ['  A    BB', '  ccc  d']
    >>> table([])
    []
    """
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in rows
    ]


def when(ms: int | None, *, precise: bool = True) -> str:
    """Epoch ``ms`` in UTC: ISO 8601 with milliseconds and ``Z`` (a record's own time),
    or, not ``precise``, to the second with a space (a table column headed ``(UTC)``);
    ``-`` for None."""
    if ms is None:
        return "-"
    at = datetime.fromtimestamp(ms / 1000, UTC)
    if not precise:
        return at.strftime("%Y-%m-%d %H:%M:%S")
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
