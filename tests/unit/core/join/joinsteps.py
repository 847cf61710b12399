"""What the join loop does with a joiner's Step, on a dict standing for its store."""

from __future__ import annotations

from driftline.core.join.joiner import Step
from driftline.core.join.rules import JoinEntry


def apply(store: dict[bytes, bytes], step: Step) -> None:
    """Apply ``step`` to ``store`` as the join loop does (``JoinLoop._record`` then
    ``_apply``): its extra writes, then its entry, whose deadline it states."""
    for k, v in step.extra:
        if v is None:
            store.pop(k, None)
        else:
            store[k] = v
    if step.keep or step.key is None:
        return
    if step.entry is None:
        store.pop(step.key, None)
    else:
        assert step.deadline_ms == JoinEntry.from_bytes(step.entry).deadline_ms
        store[step.key] = step.entry
