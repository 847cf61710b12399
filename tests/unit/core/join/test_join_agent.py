"""The join rules and the expiry index driven as the join agent drives them.

Random interleavings of predictions, labels (with duplicates) and sweeps over a few
event_ids: every message must come out in exactly one emission or still be held, and
no event_id is joined twice while its tombstone is kept.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.core.join.rules import (
    DuplicateLabel,
    DuplicatePrediction,
    Emission,
    ExpiredPrediction,
    ExpiryIndex,
    Joined,
    JoinEntry,
    LateLabel,
    LatePrediction,
    OrphanLabel,
    expire,
    on_label,
    on_prediction,
)

TTL = 50

steps = st.lists(
    st.tuples(st.sampled_from("PLX"), st.sampled_from(["a", "b", "c"]), st.integers(0, 40)),
    max_size=60,
)


def messages(emission: Emission) -> int:
    """How many input messages an emission accounts for."""
    return 2 if isinstance(emission, Joined) else 1


@settings(max_examples=300)
@given(steps)
def test_every_message_accounted_for_once(script: list[tuple[str, str, int]]) -> None:
    table: dict[str, bytes] = {}  # the changelogged table holds bytes
    index = ExpiryIndex[str](bucket_ms=10)
    out: list[tuple[str, Emission]] = []
    joined_at: dict[str, int] = {}
    now = sent = 0

    def store(key: str, entry: JoinEntry | None) -> None:
        if entry is None:
            table.pop(key, None)
        else:
            table[key] = entry.to_bytes()
            index.add(key, entry.deadline_ms)

    for op, key, gap in script:
        now += gap
        if op == "X":  # the agent's timer: sweep what is due
            for due_key in index.due(now):
                if due_key in table:
                    entry, swept = expire(JoinEntry.from_bytes(table[due_key]), now)
                    store(due_key, entry)
                    out.extend((due_key, e) for e in swept)
            continue
        old = JoinEntry.from_bytes(table[key]) if key in table else None
        if op == "P":
            sent += 1
            new, emitted = on_prediction(old, f"p{sent}".encode(), now, now, TTL)
        else:
            sent += 1
            new, emitted = on_label(old, f"l{sent}".encode(), now, now, TTL)
        store(key, new)
        out.extend((key, e) for e in emitted)
        if any(isinstance(e, Joined) for e in emitted):
            # a second join only once the first one's tombstone (TTL) is gone
            assert now - joined_at.get(key, -TTL) >= TTL
            joined_at[key] = now

    held = sum(1 for data in table.values() if JoinEntry.from_bytes(data).payload)
    assert sum(messages(e) for _, e in out) + held == sent
    kinds = (
        Joined, DuplicateLabel, DuplicatePrediction, LateLabel, LatePrediction,
        ExpiredPrediction, OrphanLabel,
    )  # fmt: skip
    assert all(isinstance(e, kinds) for _, e in out)
