"""FeatureEvent v2 through the real broker: an old producer (v1 bytes, built with the
schemas it shipped with) and a new one (v2 bytes with ``source``, through the client
library) feed the same worker, which predicts and joins both; an old consumer, built
before v2, still reads the predictions; an incompatible v3 is refused by the schema
check, and bytes a producer writes with it anyway are dead-lettered."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

from driftline.client import Prediction, Producer, Subscriber
from driftline.core.errors import UnknownSchemaError
from driftline.core.wire.codec import Codec, default_codec
from driftline.core.wire.schemas import Schemas
from tests import hostile as H
from tests.integration import harness
from tests.integration.clienthelpers import take
from tests.schema_compat import check_schema_dir, next_version, schema_dir_with

V2 = "feature_event.v2.avsc"
N = 200  # events per producer


def old_codec(tmp_path: Path) -> Codec:
    """The codec of a process built before FeatureEvent v2 was published."""
    return Codec(Schemas.from_dir(schema_dir_with(tmp_path / "v1-schemas", without={V2})))


def test_old_and_new_producers_and_consumers_interoperate(pipeline: Any, tmp_path: Path) -> None:
    s, champion, proc = pipeline
    old = old_codec(tmp_path)
    new = default_codec()
    v1, v2 = new.schemas.versions("FeatureEvent")
    assert old.schemas.current("FeatureEvent").fingerprint == v1.fingerprint
    rng = random.Random(5)

    # The old producer writes v1: no ``source`` field.
    old_events = [H.good_event(rng, f"old-{i}") for i in range(N)]
    for e in old_events:
        del e["source"]
    harness.produce(s, "features", [(e["event_id"].encode(), old.encode("FeatureEvent", e))
                                    for e in old_events])  # fmt: skip
    # The new producer (the client library) writes v2 with ``source`` set.
    new_events = [H.good_event(rng, f"new-{i}", source="shop-web") for i in range(N)]
    with Producer(s, app="shop-web") as producer:
        for e in new_events:
            producer.send_features(e["model"], e["features"], event_id=e["event_id"],
                                   event_time_ms=e["event_time_ms"], segment=e["segment"],
                                   source="shop-web")  # fmt: skip

    raw = harness.collect(s, "features", lambda got: len(got) >= 2 * N, decode=False)
    headers = {m.key().decode(): m.value()[2:10] for m in raw}
    assert {headers[e["event_id"]] for e in old_events} == {v1.fingerprint}
    assert {headers[e["event_id"]] for e in new_events} == {v2.fingerprint}
    read = {new.decode(m.value()).value["event_id"]: new.decode(m.value()) for m in raw}
    assert {read[e["event_id"]].writer_version for e in old_events} == {1}
    assert {read[e["event_id"]].value["source"] for e in old_events} == {None}
    assert {read[e["event_id"]].value["source"] for e in new_events} == {"shop-web"}
    # A reader without the v2 file refuses v2 bytes: readers are upgraded first.
    for m in raw:
        if m.value()[2:10] == v2.fingerprint:
            try:
                old.decode(m.value())
            except UnknownSchemaError:
                continue
            raise AssertionError("a v1-only reader decoded v2 bytes")
        assert old.decode(m.value()).value["event_id"].startswith("old-")

    # The worker predicts both, with the champion, and joins their labels.
    ids = {e["event_id"] for e in old_events + new_events}
    preds = harness.collect(s, "predictions", lambda got: len(got) >= len(ids))
    assert sorted(p["event_id"] for p in preds) == sorted(ids), proc.tail()
    assert {p["version"] for p in preds} == {champion}
    labels = [H.good_label(rng, i) for i in sorted(ids)]
    harness.produce(s, "labels", harness.encoded("io.driftline.Label", labels))
    outcomes = harness.collect(s, "outcomes", lambda got: len(got) >= len(ids))
    assert sorted(o["event_id"] for o in outcomes) == sorted(ids)
    dead = harness.collect(s, "deadletter", lambda got: False, timeout=2)
    assert dead == []

    # The old consumer (a subscriber built without FeatureEvent v2) reads predictions:
    # FeatureEvent v2 changed no other record. (Prediction v2, with the challengers'
    # predictions, came later: this reader has its file, as readers must first.)
    with Subscriber(Prediction, s, app="old-consumer", start="earliest", codec=old) as sub:
        got = take(sub, len(ids))
    assert sorted(g.record.event_id for g in got) == sorted(ids)
    assert {g.writer_version for g in got} == {2}
    assert {g.record.challengers for g in got} == {None}  # no challenger was served
    by_id = {p["event_id"]: p for p in preds}
    assert all(g.record == Prediction.from_dict(by_id[g.record.event_id]) for g in got)


def remove_event_time(schema: dict[str, Any]) -> None:
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "event_time_ms"]


def event_time_as_string(schema: dict[str, Any]) -> None:
    next(f for f in schema["fields"] if f["name"] == "event_time_ms")["type"] = "string"


def test_an_incompatible_v3_is_refused_and_its_bytes_are_dead_lettered(
    pipeline: Any, tmp_path: Path
) -> None:
    s, _, proc = pipeline
    file_name, number, current = next_version("feature_event")
    assert (file_name, number) == ("feature_event.v3.avsc", 3)
    for change, direction in ((remove_event_time, "forward"), (event_time_as_string, "backward")):
        v3 = copy.deepcopy(current)
        change(v3)
        problems = check_schema_dir(schema_dir_with(tmp_path / change.__name__, {file_name: v3}))
        assert any(f"({direction} incompatible)" in p and "FeatureEvent" in p for p in problems)

    # A producer that ships the refused v3 anyway: the worker does not know its fingerprint.
    rogue = Codec(Schemas.from_dir(tmp_path / "event_time_as_string"))
    event = {**H.good_event(random.Random(1), "rogue-1"), "event_time_ms": "yesterday"}
    harness.produce(s, "features", [(b"rogue-1", rogue.encode("FeatureEvent", event))])
    good = H.good_event(random.Random(2), "fine-1")
    harness.produce(s, "features", [(b"fine-1", default_codec().encode("FeatureEvent", good))])
    dead = harness.collect(s, "deadletter", lambda got: len(got) >= 1)
    assert [(d["source_key"], d["reason"], d["stage"]) for d in dead] == [
        (b"rogue-1", "unknown_schema", "decode")
    ], proc.tail()
    preds = harness.collect(s, "predictions", lambda got: len(got) >= 1)
    assert [p["event_id"] for p in preds] == ["fine-1"]
