"""Dead-letter records and the Kafka headers next to every value (Connect DLQ style)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from driftline.core.wire import headers as h
from driftline.core.wire.codec import default_codec
from driftline.core.wire.deadletter import (
    MAX_DETAIL_CHARS,
    MAX_HEADER_BYTES,
    MAX_KEY_BYTES,
    MAX_SOURCE_BYTES,
    Origin,
    dead_letter,
    replay_refusal,
)
from tests.unit.core.examples import T0, same

CODEC = default_codec()
DEAD_LETTER = "io.driftline.DeadLetter"

ORIGINS: list[tuple[str, Origin]] = [
    (
        "full",
        Origin("t.features", 2, 41, b"evt-1", T0, [("traceparent", b"00-ab-cd-01"), ("x", None)]),
    ),
    ("no key, no timestamp, no headers", Origin("t.labels", 0, 0, None, None, [])),
    ("expiry sweep", Origin("t.predictions", 11, -1, b"evt-2", None, [])),
]


@pytest.mark.parametrize(
    ("origin", "raw", "model"),
    [
        (ORIGINS[0][1], b"\xc3\x01garbage", "churn"),
        (ORIGINS[1][1], None, None),
        (ORIGINS[2][1], b"", "fraud"),
    ],
    ids=[name for name, _ in ORIGINS],
)
def test_record_decodes_as_dead_letter(
    origin: Origin, raw: bytes | None, model: str | None
) -> None:
    record, _ = dead_letter(
        origin, stage="join", reason="orphan_label", detail="no prediction", raw=raw,
        model=model, now_ms=T0 + 9,
    )  # fmt: skip
    decoded = CODEC.decode(CODEC.encode(DEAD_LETTER, record), expect=DEAD_LETTER)
    assert decoded.name == DEAD_LETTER
    assert same(decoded.value, record)
    expected = {
        "source_topic": origin.topic,
        "source_partition": origin.partition,
        "source_offset": origin.offset,
        "source_key": origin.key,
        "source_timestamp_ms": origin.timestamp_ms,
        "stage": "join",
        "reason": "orphan_label",
        "detail": "no prediction",
        "model": model,
        "failed_at_ms": T0 + 9,
        "raw": b"" if raw is None else raw,
        "headers": [{"key": k, "value": v} for k, v in origin.headers],
    }
    assert same(decoded.value, expected)


@pytest.mark.parametrize(
    ("detail", "truncated"),
    [
        ("", False),
        ("x" * (MAX_DETAIL_CHARS - 1), False),
        ("x" * MAX_DETAIL_CHARS, False),
        ("x" * (MAX_DETAIL_CHARS + 1), True),
        ("é" * (10 * MAX_DETAIL_CHARS), True),
        ("€" * 999, False),  # 2,997 bytes: the record keeps it, the header is cut
        ("a€€" * 600, False),
    ],
    ids=["empty", "one under", "at limit", "one over", "ten times", "euro", "mixed"],
)
def test_detail_truncation(detail: str, truncated: bool) -> None:
    record, hdrs = dead_letter(
        ORIGINS[0][1], stage="validate", reason="missing_feature", detail=detail,
        raw=b"", model=None, now_ms=T0,
    )  # fmt: skip
    kept = record["detail"]
    assert len(kept) <= MAX_DETAIL_CHARS
    if truncated:
        assert len(kept) == MAX_DETAIL_CHARS
        assert kept.endswith("...")
        assert detail.startswith(kept.removesuffix("..."))
    else:
        assert kept == detail
    as_read: list[tuple[str, str | bytes | None]] = list(hdrs)
    message = h.header_value(as_read, h.DLQ_MESSAGE)
    assert message is not None
    assert len(message) <= MAX_HEADER_BYTES
    text = message.decode("utf-8")  # every header value is UTF-8 text, even when cut
    assert kept.startswith(text)
    assert len(text.encode()) > MAX_HEADER_BYTES - 4 or text == kept  # cut at most one character


CONNECT_NAMES = {
    "topic": "__connect.errors.topic",
    "partition": "__connect.errors.partition",
    "offset": "__connect.errors.offset",
    "stage": "__connect.errors.stage",
    "reason": "__connect.errors.exception.class.name",
    "message": "__connect.errors.exception.message",
}


def test_connect_header_names_are_kafka_connects() -> None:
    assert CONNECT_NAMES == {
        "topic": h.DLQ_TOPIC,
        "partition": h.DLQ_PARTITION,
        "offset": h.DLQ_OFFSET,
        "stage": h.DLQ_STAGE,
        "reason": h.DLQ_REASON,
        "message": h.DLQ_MESSAGE,
    }


@pytest.mark.parametrize("origin", [o for _, o in ORIGINS], ids=[n for n, _ in ORIGINS])
@pytest.mark.parametrize(
    ("stage", "reason", "detail"),
    [
        ("decode", "undecodable", "body is truncated"),
        ("join", "expired_prediction", "no label arrived within the model's join TTL"),
        ("score", "model_error", "churn v1 raised RuntimeError('boom')"),
    ],
)
def test_headers_say_what_the_record_says(
    origin: Origin, stage: str, reason: str, detail: str
) -> None:
    record, hdrs = dead_letter(
        origin, stage=stage, reason=reason, detail=detail, raw=b"r", model=None, now_ms=T0 + 3
    )
    assert all(isinstance(v, bytes) for _, v in hdrs)
    assert len({k for k, _ in hdrs}) == len(hdrs)  # no name twice
    assert h.parse(hdrs) == {
        h.CONTENT_TYPE: h.AVRO_SINGLE_OBJECT,
        h.SCHEMA: DEAD_LETTER,
        h.EVENT_TIME: str(record["failed_at_ms"]),
        h.REASON: record["reason"],
        CONNECT_NAMES["topic"]: record["source_topic"],
        CONNECT_NAMES["partition"]: str(record["source_partition"]),
        CONNECT_NAMES["offset"]: str(record["source_offset"]),
        CONNECT_NAMES["stage"]: record["stage"],
        CONNECT_NAMES["reason"]: record["reason"],
        CONNECT_NAMES["message"]: record["detail"],
    }


TRACE = "ab" * 16


@pytest.mark.parametrize(
    ("schema", "event_time_ms", "trace_id", "reason", "expected"),
    [
        ("io.driftline.Label", None, None, None, {}),
        ("io.driftline.Label", 0, None, None, {h.EVENT_TIME: "0"}),
        ("io.driftline.Outcome", T0, TRACE, None, {h.EVENT_TIME: str(T0), h.TRACE_ID: TRACE}),
        (DEAD_LETTER, T0, None, "undecodable", {h.EVENT_TIME: str(T0), h.REASON: "undecodable"}),
    ],
)
def test_build(
    schema: str,
    event_time_ms: int | None,
    trace_id: str | None,
    reason: str | None,
    expected: dict[str, str],
) -> None:
    hdrs = h.build(schema, event_time_ms, trace_id, reason)
    assert hdrs[:2] == [
        (h.CONTENT_TYPE, h.AVRO_SINGLE_OBJECT.encode()),
        (h.SCHEMA, schema.encode()),
    ]
    assert h.parse(hdrs) == {h.CONTENT_TYPE: h.AVRO_SINGLE_OBJECT, h.SCHEMA: schema, **expected}
    assert h.for_confluent(hdrs) == hdrs


MIXED: list[tuple[str, str | bytes | None]] = [
    ("a", "1"),
    ("b", b"\x00\xff"),
    ("c", None),
    ("a", b"2"),
]

RAW_HEADERS: list[tuple[str, Any, list[tuple[str, bytes | None]]]] = [
    ("None", None, []),
    ("empty list", [], []),
    ("empty dict", {}, []),
    ("str, bytes, None", MIXED, [("a", b"1"), ("b", b"\x00\xff"), ("c", None), ("a", b"2")]),
    ("dict", {"a": "1", "b": b"\xff", "c": None}, [("a", b"1"), ("b", b"\xff"), ("c", None)]),
    ("unicode str", [("n", "grüße")], [("n", "grüße".encode())]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "expected"), [(r, e) for _, r, e in RAW_HEADERS], ids=[n for n, _, _ in RAW_HEADERS]
)
def test_header_list(raw: Any, expected: list[tuple[str, bytes | None]]) -> None:
    assert h.header_list(raw) == expected


@pytest.mark.parametrize(
    ("raw", "name", "expected"),
    [
        (None, "a", None),
        ([], "a", None),
        (MIXED, "a", b"2"),  # the last of repeated names
        (MIXED, "b", b"\x00\xff"),
        (MIXED, "c", None),  # present with a null value
        (MIXED, "zz", None),
        ({"a": "1", "c": None}, "a", b"1"),
        ({"a": "1", "c": None}, "c", None),
        ({"a": "1"}, "A", None),  # names are case-sensitive
    ],
)
def test_header_value(raw: Any, name: str, expected: bytes | None) -> None:
    assert h.header_value(raw, name) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, {}),
        (MIXED, {"a": "2", "b": "\x00\ufffd", "c": ""}),
        ([("x", "text")], {"x": "text"}),
    ],
)
def test_parse(raw: Any, expected: dict[str, str]) -> None:
    assert h.parse(raw) == expected


def test_trace_ids_are_fresh_lowercase_hex() -> None:
    ids = {h.new_trace_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 32 and i == i.lower() and int(i, 16) >= 0 for i in ids)


BROKER_MAX = 1_048_588  # Kafka's default message.max.bytes: the largest value a topic takes
PRODUCER_MAX = 1_000_000  # librdkafka's default message.max.bytes, Faust's max_request_size


def _message_size(record: dict[str, Any], hdrs: list[tuple[str, bytes]], key: bytes | None) -> int:
    value = CODEC.encode(DEAD_LETTER, record)
    return len(value) + len(key or b"") + sum(len(k) + len(v) for k, v in hdrs)


# (what, raw, key, source headers, raw kept whole, source headers kept)
OVERSIZED: list[tuple[str, bytes, bytes | None, list[tuple[str, bytes | None]], bool, bool]] = [
    ("at the budget", b"r" * (MAX_SOURCE_BYTES - 4), b"k", [("h", b"v")], True, True),
    ("one over it", b"r" * (MAX_SOURCE_BYTES - 3), b"k", [("h", b"v")], False, True),
    ("broker-sized value", bytes(BROKER_MAX), b"evt-1", [("h", b"v")], False, True),
    ("broker-sized value, no key", bytes(BROKER_MAX), None, [], False, True),
    ("huge headers", b"r" * 100, b"k", [("h", bytes(BROKER_MAX - 200))], True, False),
    ("huge headers and value", bytes(600_000), b"k", [("h", bytes(600_000))], True, False),
    ("long key", bytes(BROKER_MAX - 100_000), b"k" * 100_000, [], True, True),
    ("long key, broker-sized value", bytes(BROKER_MAX - 5_000), b"k" * 5_000, [], False, True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "key", "source_headers", "whole", "headers_kept"),
    [c[1:] for c in OVERSIZED],
    ids=[c[0] for c in OVERSIZED],
)
def test_a_dead_letter_fits_in_a_kafka_message_whatever_it_carries(
    raw: bytes,
    key: bytes | None,
    source_headers: list[tuple[str, bytes | None]],
    whole: bool,
    headers_kept: bool,
) -> None:
    origin = Origin("t.features", 1, 9, key, T0, source_headers)
    detail = "€" * (MAX_DETAIL_CHARS * 2)  # the longest detail, in 3-byte characters
    record, hdrs = dead_letter(
        origin, stage="decode", reason="undecodable", detail=detail, raw=raw, model="churn",
        now_ms=T0,
    )  # fmt: skip
    assert record["source_key"] == (None if key is None else key[:MAX_KEY_BYTES])
    assert _message_size(record, hdrs, record["source_key"]) < PRODUCER_MAX
    assert raw.startswith(record["raw"])
    assert (record["raw"] == raw) is whole
    kept = [(x["key"], x["value"]) for x in record["headers"]]
    assert kept == (source_headers if headers_kept else [])
    assert len(record["detail"]) <= MAX_DETAIL_CHARS
    if not whole:
        digest = hashlib.sha256(raw).hexdigest()
        cut = f"raw cut to the first {len(record['raw'])} of {len(raw)} bytes (sha256 {digest})"
        assert cut in record["detail"]
    if key is not None and len(key) > MAX_KEY_BYTES:
        assert record["detail"].startswith(f"key cut to the first {MAX_KEY_BYTES} of {len(key)}")
    if not headers_kept:
        assert "source headers left out" in record["detail"]
    assert CODEC.decode(CODEC.encode(DEAD_LETTER, record)).value == record
    exact = whole and headers_kept and (key is None or len(key) <= MAX_KEY_BYTES)
    assert (replay_refusal(record) is None) == exact  # `driftline deadletters replay`
