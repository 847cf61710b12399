"""A generator of hostile messages for the features and labels topics, each with the
dead-letter reason and stage the pipeline must give it.

Shared by the hostile-input run through the real broker
(tests/integration/test_hostile.py) and the property tests of the core
(tests/unit/core/model/test_hostile_properties.py), which draw the same kinds with
hypothesis. Every builder is ``(rng, n) -> Bad``: ``rng`` decides the details, ``n``
makes the event id unique. The model is the ``churn`` model of the integration tests
(x1: number in [-100, 100], x2: number, plan: category basic or pro, all required).

Sizes: the ``RARE_*`` kinds build values close to the broker's ``message.max.bytes``
(Kafka's default, 1,048,588 bytes for a whole record batch); a producer must allow
such values (``message.max.bytes`` above librdkafka's default of 1,000,000).
"""

from __future__ import annotations

import io
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastavro import parse_schema, schemaless_writer

from driftline.core.model.validation import Spec
from driftline.core.wire.codec import HEADER_SIZE, MARKER, Codec, default_codec
from driftline.core.wire.envelope import MAX_EVENT_BYTES, MAX_EVENT_ID_CHARS, MAX_LABEL_BYTES
from driftline.core.wire.schemas import crc64_avro

MODEL = "churn"
T0 = 1_700_000_000_000
FEATURE_EVENT = "io.driftline.FeatureEvent"
LABEL = "io.driftline.Label"
BROKER_MAX_VALUE = 1_048_000
"""The largest value the tests produce: Kafka's default ``message.max.bytes`` (1,048,588
for the whole record batch) less room for the batch and record framing, key and headers."""

SPEC = Spec.from_dicts(
    [
        {"name": "x1", "type": "number", "min": -100.0, "max": 100.0},
        {"name": "x2", "type": "number"},
        {"name": "plan", "type": "category", "categories": ["basic", "pro"]},
    ]
)
"""The feature spec of the ``churn`` model (tests/integration/churn.py)."""


@dataclass(frozen=True)
class Bad:
    """One hostile message: what it is, its key and value (None: a tombstone), and the
    reason and stage of the dead letter it must become."""

    kind: str
    key: bytes | None
    value: bytes | None
    reason: str
    stage: str
    event_id: str | None = field(default=None, compare=False)
    """The event id a label may refer to (for events that are refused)."""
    headers: tuple[tuple[str, bytes], ...] = ()
    """Kafka headers to send with it."""


def good_event(rng: random.Random, event_id: str, **overrides: Any) -> dict[str, Any]:
    """A FeatureEvent dict the churn champion scores."""
    event = {
        "event_id": event_id,
        "model": MODEL,
        "event_time_ms": T0 + rng.randrange(10**9),
        "features": {
            "x1": rng.uniform(-3, 3),
            "x2": rng.gauss(0, 1),
            "plan": rng.choice(["basic", "pro"]),
        },
        "segment": {"plan": "any"},
        "source": rng.choice([None, "shop-web", "shop-app"]),
    }
    event.update(overrides)
    return event


def good_label(rng: random.Random, event_id: str, **overrides: Any) -> dict[str, Any]:
    """A Label dict for the churn model."""
    label = {
        "event_id": event_id,
        "model": MODEL,
        "label": rng.random() < 0.5,
        "label_time_ms": T0 + 10**9 + rng.randrange(10**6),
    }
    label.update(overrides)
    return label


def _codec() -> Codec:
    return default_codec()


def _event_bytes(rng: random.Random, event_id: str, **overrides: Any) -> bytes:
    return _codec().encode(FEATURE_EVENT, good_event(rng, event_id, **overrides))


def _label_bytes(rng: random.Random, event_id: str, **overrides: Any) -> bytes:
    return _codec().encode(LABEL, good_label(rng, event_id, **overrides))


def _features(rng: random.Random, **changes: Any) -> dict[str, Any]:
    features: dict[str, Any] = good_event(rng, "x")["features"]
    features.update(changes)
    return {k: v for k, v in features.items() if v is not _DROP}


_DROP: Any = object()


def _garbage(rng: random.Random, size: int) -> bytes:
    """Random bytes that do not start with the single-object marker."""
    data = bytearray(rng.randbytes(size))
    if size and data[0] == MARKER[0]:
        data[0] ^= 0xFF
    return bytes(data)


def _unknown_fingerprint(rng: random.Random) -> bytes:
    known = {sv.fingerprint for sv in _codec().schemas}
    while True:
        fp = rng.randbytes(8)
        if fp not in known:
            return fp


_ROGUE_SCHEMA = parse_schema(
    {
        "type": "record",
        "name": "FeatureEvent",
        "namespace": "io.driftline",
        "doc": "An unpublished, incompatible FeatureEvent: event_time_ms became a string.",
        "fields": [
            {"name": "event_id", "type": "string", "doc": "Id."},
            {"name": "model", "type": "string", "doc": "Model."},
            {"name": "event_time_ms", "type": "string", "doc": "Now a string."},
            {
                "name": "features",
                "type": {"type": "map", "values": ["null", "boolean", "long", "double", "string"]},
                "doc": "Features.",
            },
        ],
    },
    named_schemas={},
)
_WIDE_UNION_SCHEMA = parse_schema(
    {
        "type": "record",
        "name": "FeatureEvent",
        "namespace": "io.driftline",
        "fields": [
            {"name": "event_id", "type": "string"},
            {"name": "model", "type": "string"},
            {"name": "event_time_ms", "type": "long"},
            {
                "name": "features",
                "type": {
                    "type": "map",
                    "values": ["null", "boolean", "long", "double", "string", "bytes", "int"],
                },
            },
            {"name": "segment", "type": {"type": "map", "values": "string"}},
            {"name": "source", "type": ["null", "string"]},
        ],
    },
    named_schemas={},
)


def _with_schema(schema: Any, fingerprint: bytes, record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    out.write(MARKER + fingerprint)
    schemaless_writer(out, schema, record)
    return out.getvalue()


def _rogue_fingerprint() -> bytes:
    from fastavro.schema import to_parsing_canonical_form

    return crc64_avro(to_parsing_canonical_form(_ROGUE_SCHEMA))


# --- features topic ------------------------------------------------------------------------

Builder = Callable[[random.Random, int], Bad]


def _f(kind: str, key: bytes | None, value: bytes | None, reason: str, stage: str,
       event_id: str | None = None) -> Bad:  # fmt: skip
    return Bad(kind, key, value, reason, stage, event_id)


def random_bytes(rng: random.Random, n: int) -> Bad:
    return _f("random_bytes", b"b%d" % n, _garbage(rng, rng.randrange(1, 300)), "undecodable",
              "decode")  # fmt: skip


def empty_value(rng: random.Random, n: int) -> Bad:
    return _f("empty_value", b"b%d" % n, b"", "undecodable", "decode")


def tombstone(rng: random.Random, n: int) -> Bad:
    return _f("tombstone", b"b%d" % n, None, "undecodable", "decode")


def short_header(rng: random.Random, n: int) -> Bad:
    value = MARKER + rng.randbytes(rng.randrange(0, HEADER_SIZE - 2))
    return _f("short_header", b"b%d" % n, value, "undecodable", "decode")


def truncated(rng: random.Random, n: int) -> Bad:
    eid = f"b{n}"
    data = _event_bytes(rng, eid)
    return _f("truncated", eid.encode(), data[: rng.randrange(2, len(data))], "undecodable",
              "decode")  # fmt: skip


def trailing_bytes(rng: random.Random, n: int) -> Bad:
    eid = f"b{n}"
    data = _event_bytes(rng, eid) + rng.randbytes(rng.randrange(1, 20))
    return _f("trailing_bytes", eid.encode(), data, "undecodable", "decode")


def bad_union_branch(rng: random.Random, n: int) -> Bad:
    """A body whose feature union names a branch FeatureEvent does not have."""
    eid = f"b{n}"
    record = good_event(rng, eid)
    record["features"]["x2"] = rng.randbytes(4)  # branch 5 (bytes): FeatureEvent has 0-4
    fp = _codec().schemas.current(FEATURE_EVENT).fingerprint
    return _f("bad_union_branch", eid.encode(), _with_schema(_WIDE_UNION_SCHEMA, fp, record),
              "undecodable", "decode")  # fmt: skip


def unknown_fingerprint(rng: random.Random, n: int) -> Bad:
    eid = f"b{n}"
    body = _event_bytes(rng, eid)[HEADER_SIZE:]
    return _f("unknown_fingerprint", eid.encode(), MARKER + _unknown_fingerprint(rng) + body,
              "unknown_schema", "decode")  # fmt: skip


def unpublished_schema(rng: random.Random, n: int) -> Bad:
    """A producer writing an incompatible FeatureEvent that was never published."""
    eid = f"b{n}"
    record = {"event_id": eid, "model": MODEL, "event_time_ms": "yesterday",
              "features": good_event(rng, eid)["features"]}  # fmt: skip
    value = _with_schema(_ROGUE_SCHEMA, _rogue_fingerprint(), record)
    return _f("unpublished_schema", eid.encode(), value, "unknown_schema", "decode")


def wrong_record(rng: random.Random, n: int) -> Bad:
    eid = f"b{n}"
    codec = _codec()
    which = rng.choice(["label", "prediction", "alert"])
    if which == "label":
        value = codec.encode(LABEL, good_label(rng, eid))
    elif which == "prediction":
        value = codec.encode("io.driftline.Prediction", {
            "event_id": eid, "model": MODEL, "version": "v1", "event_time_ms": T0,
            "predicted_at_ms": T0, "prediction": True, "latency_us": 1,
        })  # fmt: skip
    else:
        value = codec.encode("io.driftline.Alert", {
            "alert_id": eid, "model": MODEL, "kind": "model_error", "severity": "info",
            "message": "not a feature event", "evidence": {}, "created_at_ms": T0,
        })  # fmt: skip
    return _f("wrong_record", eid.encode(), value, "wrong_record", "decode")


def wrong_type(rng: random.Random, n: int) -> Bad:
    eid = f"b{n}"
    feature, value = rng.choice([
        ("x1", "one"), ("x1", True), ("x2", False), ("x2", str(rng.random())),
        ("plan", 3), ("plan", 1.5), ("plan", True),
    ])  # fmt: skip
    data = _event_bytes(rng, eid, features=_features(rng, **{feature: value}))
    return _f("wrong_type", eid.encode(), data, "type_mismatch", "validate", eid)


def non_finite(rng: random.Random, n: int) -> Bad:
    eid = f"b{n}"
    feature = rng.choice(["x1", "x2"])
    value = rng.choice([math.nan, math.inf, -math.inf])
    data = _event_bytes(rng, eid, features=_features(rng, **{feature: value}))
    return _f("non_finite", eid.encode(), data, "non_finite", "validate", eid)


def huge_number(rng: random.Random, n: int) -> Bad:
    """x1 is bounded: a huge int or double is out of range (ints beyond 64 bits travel
    as doubles)."""
    eid = f"b{n}"
    sign = rng.choice([1, -1])
    value = sign * rng.choice([1e300, 1.7e308, 2**62, 2**63 - 1, 2**70, 101])
    data = _event_bytes(rng, eid, features=_features(rng, x1=value))
    return _f("huge_number", eid.encode(), data, "out_of_range", "validate", eid)


def huge_string(rng: random.Random, n: int) -> Bad:
    eid = f"b{n}"
    plan = "p" * rng.randrange(1_000, 30_000)
    data = _event_bytes(rng, eid, features=_features(rng, plan=plan))
    return _f("huge_string", eid.encode(), data, "unseen_category", "validate", eid)


def unseen_category(rng: random.Random, n: int) -> Bad:
    eid = f"b{n}"
    plan = rng.choice(["gold", "", "Basic", "pro ", "basic\x00"])
    data = _event_bytes(rng, eid, features=_features(rng, plan=plan))
    return _f("unseen_category", eid.encode(), data, "unseen_category", "validate", eid)


def missing_feature(rng: random.Random, n: int) -> Bad:
    eid = f"b{n}"
    feature = rng.choice(["x1", "x2", "plan"])
    gone = rng.choice([_DROP, None])
    data = _event_bytes(rng, eid, features=_features(rng, **{feature: gone}))
    return _f("missing_feature", eid.encode(), data, "missing_feature", "validate", eid)


def unexpected_feature(rng: random.Random, n: int) -> Bad:
    eid = f"b{n}"
    name = rng.choice(["x3", "X1", "plan ", "é" * rng.randrange(1, 50)])
    data = _event_bytes(rng, eid, features=_features(rng, **{name: rng.random()}))
    return _f("unexpected_feature", eid.encode(), data, "unexpected_feature", "validate", eid)


def unknown_model(rng: random.Random, n: int) -> Bad:
    eid = f"b{n}"
    model = rng.choice(["nope", "", "Churn", "churn ", "x" * rng.randrange(1, 5_000)])
    data = _event_bytes(rng, eid, model=model)
    return _f("unknown_model", eid.encode(), data, "unknown_model", "validate")


def missing_key(rng: random.Random, n: int) -> Bad:
    return _f("missing_key", None, _event_bytes(rng, f"b{n}"), "missing_key", "validate")


def key_mismatch(rng: random.Random, n: int) -> Bad:
    eid = f"b{n}"
    key = rng.choice([f"k{n}".encode(), f"b{n} ".encode(), f"B{n}".encode(), b"\xff%d" % n])
    return _f("key_mismatch", key, _event_bytes(rng, eid), "key_mismatch", "validate")


def invalid_event_id(rng: random.Random, n: int) -> Bad:
    eid = rng.choice(["", f"b{n}-" + "e" * rng.randrange(MAX_EVENT_ID_CHARS, 20_000)])
    return _f("invalid_event_id", eid.encode(), _event_bytes(rng, eid), "invalid_event_id",
              "validate")  # fmt: skip


def huge_key(rng: random.Random, n: int) -> Bad:
    """A key of 10 KB to 500 KB (a Driftline key is an event id: at most 1 KB)."""
    key = b"k%d-" % n + rng.randbytes(rng.randrange(10_000, 500_000))
    return _f("huge_key", key, _event_bytes(rng, f"b{n}"), "key_mismatch", "validate")


def huge_headers(rng: random.Random, n: int) -> Bad:
    """Garbage with 100 KB to 600 KB of headers (the dead letter leaves them out)."""
    headers = tuple((f"h{i}", rng.randbytes(100_000)) for i in range(rng.randrange(1, 7)))
    value = _garbage(rng, rng.randrange(1, 300_000))
    return Bad("huge_headers", b"b%d" % n, value, "undecodable", "decode", headers=headers)


def over_event_limit(rng: random.Random, n: int) -> Bad:
    """A valid event just over the size a FeatureEvent may have."""
    eid = f"b{n}"
    pad = "s" * (MAX_EVENT_BYTES + rng.randrange(1, 5_000))
    data = _event_bytes(rng, eid, segment={"note": pad})
    return _f("over_event_limit", eid.encode(), data, "too_large", "validate")


def near_broker_limit(rng: random.Random, n: int) -> Bad:
    """A value close to the broker's message.max.bytes: garbage or a fitting event."""
    eid = f"b{n}"
    size = BROKER_MAX_VALUE - rng.randrange(0, 2_000)
    if rng.random() < 0.5:
        value = _garbage(rng, size)
    else:
        base = len(_event_bytes(random.Random(n), eid, segment={"note": ""}, source=None))
        value = _event_bytes(random.Random(n), eid, segment={"note": "s" * (size - base - 4)},
                             source=None)  # fmt: skip
    return _f("near_broker_limit", eid.encode(), value, "too_large", "validate")


FEATURE_KINDS: dict[str, Builder] = {
    f.__name__: f
    for f in (
        random_bytes, empty_value, tombstone, short_header, truncated, trailing_bytes,
        bad_union_branch, unknown_fingerprint, unpublished_schema, wrong_record, wrong_type,
        non_finite, huge_number, huge_string, unseen_category, missing_feature,
        unexpected_feature, unknown_model, missing_key, key_mismatch, invalid_event_id,
        huge_key, huge_headers, over_event_limit, near_broker_limit,
    )
}  # fmt: skip
"""Every kind of hostile feature event, by name."""

RARE_FEATURES = frozenset({"huge_key", "huge_headers", "over_event_limit", "near_broker_limit"})
"""Kinds whose values are close to the broker's limit: draw few of them."""


# --- labels topic --------------------------------------------------------------------------


def _l(kind: str, key: bytes | None, value: bytes | None, reason: str) -> Bad:
    return Bad(kind, key, value, reason, "join")


def label_random_bytes(rng: random.Random, n: int) -> Bad:
    return _l("label_random_bytes", b"l%d" % n, _garbage(rng, rng.randrange(1, 200)),
              "undecodable")  # fmt: skip


def label_empty(rng: random.Random, n: int) -> Bad:
    return _l("label_empty", b"l%d" % n, rng.choice([b"", None]), "undecodable")


def label_truncated(rng: random.Random, n: int) -> Bad:
    eid = f"l{n}"
    data = _label_bytes(rng, eid)
    return _l("label_truncated", eid.encode(), data[: rng.randrange(2, len(data))],
              "undecodable")  # fmt: skip


def label_unknown_fingerprint(rng: random.Random, n: int) -> Bad:
    eid = f"l{n}"
    body = _label_bytes(rng, eid)[HEADER_SIZE:]
    return _l("label_unknown_fingerprint", eid.encode(),
              MARKER + _unknown_fingerprint(rng) + body, "unknown_schema")  # fmt: skip


def label_wrong_record(rng: random.Random, n: int) -> Bad:
    eid = f"l{n}"
    return _l("label_wrong_record", eid.encode(), _event_bytes(rng, eid), "wrong_record")


def label_wrong_type(rng: random.Random, n: int) -> Bad:
    """The churn model classifies: a float or null label is a label type mismatch."""
    eid = f"l{n}"
    value = rng.choice([0.5, 1.0, math.nan, math.inf, None])
    return _l("label_wrong_type", eid.encode(), _label_bytes(rng, eid, label=value),
              "label_type_mismatch")  # fmt: skip


def label_unknown_model(rng: random.Random, n: int) -> Bad:
    eid = f"l{n}"
    model = rng.choice(["nope", "", "CHURN"])
    return _l("label_unknown_model", eid.encode(), _label_bytes(rng, eid, model=model),
              "unknown_model")  # fmt: skip


def label_missing_key(rng: random.Random, n: int) -> Bad:
    return _l("label_missing_key", None, _label_bytes(rng, f"l{n}"), "missing_key")


def label_key_mismatch(rng: random.Random, n: int) -> Bad:
    return _l("label_key_mismatch", f"m{n}".encode(), _label_bytes(rng, f"l{n}"),
              "key_mismatch")  # fmt: skip


def label_invalid_event_id(rng: random.Random, n: int) -> Bad:
    eid = "L" * rng.randrange(MAX_EVENT_ID_CHARS + 1, 5_000)
    return _l("label_invalid_event_id", eid.encode(), _label_bytes(rng, eid), "invalid_event_id")


def label_huge_key(rng: random.Random, n: int) -> Bad:
    key = b"m%d-" % n + rng.randbytes(rng.randrange(10_000, 500_000))
    return _l("label_huge_key", key, _label_bytes(rng, f"l{n}"), "key_mismatch")


def label_too_large(rng: random.Random, n: int) -> Bad:
    eid = f"l{n}"
    value = "y" * (MAX_LABEL_BYTES + rng.randrange(0, 50_000))
    return _l("label_too_large", eid.encode(), _label_bytes(rng, eid, label=value), "too_large")


def label_near_broker_limit(rng: random.Random, n: int) -> Bad:
    eid = f"l{n}"
    size = BROKER_MAX_VALUE - rng.randrange(0, 2_000)
    if rng.random() < 0.5:
        return _l("label_near_broker_limit", eid.encode(), _garbage(rng, size), "undecodable")
    value = _label_bytes(rng, eid, label="y" * (size - 100))
    return _l("label_near_broker_limit", eid.encode(), value, "too_large")


LABEL_KINDS: dict[str, Builder] = {
    f.__name__: f
    for f in (
        label_random_bytes, label_empty, label_truncated, label_unknown_fingerprint,
        label_wrong_record, label_wrong_type, label_unknown_model, label_missing_key,
        label_key_mismatch, label_invalid_event_id, label_huge_key, label_too_large,
        label_near_broker_limit,
    )
}  # fmt: skip
"""Every kind of hostile label, by name (all refused at stage ``join``)."""

RARE_LABELS = frozenset({"label_huge_key", "label_too_large", "label_near_broker_limit"})
"""Label kinds of 64 KiB and more: draw few of them."""


def draw(rng: random.Random, kinds: dict[str, Builder], count: int, rare: frozenset[str],
         per_rare: int, start: int = 0) -> list[Bad]:  # fmt: skip
    """``count`` hostile messages of the ``kinds`` in a random order: every kind at least
    once, each ``rare`` kind (the big ones) ``per_rare`` times, the others drawn at random;
    event ids numbered from ``start``."""
    names = sorted(kinds)
    common = [k for k in names if k not in rare]
    plan = common + [k for k in sorted(rare) for _ in range(per_rare)]
    plan += [rng.choice(common) for _ in range(count - len(plan))]
    rng.shuffle(plan)
    return [kinds[name](rng, start + i) for i, name in enumerate(plan)]


def describe(bads: list[Bad]) -> str:
    """How many of each kind (for failure messages)."""
    counts: dict[str, int] = {}
    for b in bads:
        counts[b.kind] = counts.get(b.kind, 0) + 1
    return json.dumps(counts, sort_keys=True)
