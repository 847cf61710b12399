"""Score one feature event: decode, check, predict, encode. Pure and fast.

The champion's Prediction (v2) carries the predictions of every challenger served for
the model (``challengers``: version, prediction, scores), made on the same event at the
same time, so the join copies them into the Outcome and each challenger is judged on the
champion's labelled events. Each challenger's own Prediction is also returned, for the
``predictions.shadow`` topic. A challenger that fails (its spec refuses the event, it
raises, its output is not finite or not a Prediction value) is left out of both and
reported (``Scored.shadow_errors``); it never blocks the champion.

The scorer loop (``driftline.streams.scorer``) is thin I/O around :meth:`Scoring.score`;
the throughput benchmark calls the same method, so both measure the same work. Every
failure is raised as a :class:`~driftline.core.errors.DriftlineError` whose ``reason``
becomes the dead-letter reason code: undecodable, unknown_schema, wrong_record,
too_large, invalid_event_id, missing_key, key_mismatch, unknown_model,
missing_feature, unexpected_feature, type_mismatch, non_finite, out_of_range,
unseen_category, no_champion, model_error, non_finite_output. too_large is also the
reason of a model output that makes a Prediction over ``MAX_PREDICTION_BYTES``
(a ModelError: the event itself was within its limit).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from driftline.core.errors import DriftlineError, ModelError, ValidationError
from driftline.core.model.validation import Spec
from driftline.core.wire.codec import Codec
from driftline.core.wire.envelope import (
    MAX_EVENT_BYTES,
    MAX_PREDICTION_BYTES,
    check_envelope,
    check_size,
)
from driftline.core.wire.passthrough import Passthrough

FEATURE_EVENT = "io.driftline.FeatureEvent"
PREDICTION = "io.driftline.Prediction"
_PASSED = ("features", "segment")


class Servable(Protocol):
    """What the scorer needs of a model version (driftline.core.model.estimators.ServedModel)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def spec(self) -> Spec: ...

    def predict_one(self, features: Mapping[str, Any]) -> tuple[Any, dict[str, float]]: ...


Challengers = Servable | Sequence[Servable] | None
"""What ``lineup(model)`` gives beside the champion: none, one or several challengers."""


@dataclass(frozen=True, slots=True)
class Scored:
    """A scored event: the champion's encoded Prediction, with its facts, and one shadow
    Prediction per challenger that scored it (for ``predictions.shadow``)."""

    model: str
    version: str
    event_time_ms: int
    prediction: bytes
    shadows: tuple[bytes, ...] = ()
    shadow_errors: tuple[ModelError, ...] = ()

    @property
    def shadow(self) -> bytes | None:
        """The first challenger's shadow Prediction (None: none scored the event)."""
        return self.shadows[0] if self.shadows else None

    @property
    def shadow_error(self) -> ModelError | None:
        """The first challenger's failure, if any."""
        return self.shadow_errors[0] if self.shadow_errors else None


def _as_tuple(challengers: Challengers) -> tuple[Servable, ...]:
    if challengers is None:
        return ()
    if isinstance(challengers, list | tuple):
        return tuple(challengers)
    return (challengers,)  # type: ignore[return-value]


def _finite(value: Any, scores: Mapping[str, float]) -> bool:
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return all(math.isfinite(p) for p in scores.values())


class Scoring:
    """Scores FeatureEvent bytes with the champion (and its challengers, in shadow).

    ``lineup(model)`` returns (champion, challengers) served now, the challengers as
    None, one version or a sequence of them; it is called per event and must be a cheap
    lookup. ``known(model)`` says whether a model exists.
    """

    def __init__(
        self,
        codec: Codec,
        lineup: Callable[[str], tuple[Servable | None, Challengers]],
        known: Callable[[str], bool],
        *,
        passthrough: bool = True,
    ) -> None:
        self._codec = codec
        self._lineup = lineup
        self._known = known
        # A Prediction repeats the event's features and segment: copy their Avro bytes
        # instead of encoding them again (most of the cost of encoding a Prediction).
        # ``passthrough=False`` encodes them again (same bytes; for benchmarks).
        self._through = (
            Passthrough.between(codec, FEATURE_EVENT, PREDICTION, _PASSED) if passthrough else None
        )

    def score(self, raw: bytes, key: bytes | None, now_ms: int) -> Scored:
        """The Scored event, or a DriftlineError with the dead-letter reason."""
        check_size(raw, MAX_EVENT_BYTES, "a FeatureEvent")
        if self._through is not None:
            decoded, passed = self._through.decode(raw)
        else:
            decoded, passed = self._codec.decode(raw, expect=FEATURE_EVENT), None
        event = decoded.value
        check_envelope(event, key, self._known)
        model = event["model"]
        champion, challengers = self._lineup(model)
        if champion is None:
            raise ModelError("no_champion", f"model {model!r} has no champion version yet", model)
        features = event["features"]
        try:
            taken = champion.spec.conform(features)
        except ValidationError as exc:
            exc.model = model  # the dead letter says whose event it was (skew-rate alerts)
            raise
        if taken is not features:  # ints and bools written as doubles: encode them as taken
            features, passed = taken, None
        made = self._call(champion, features)
        shadows: list[bytes] = []
        errors: list[ModelError] = []
        others: list[dict[str, Any]] = []
        for challenger in _as_tuple(challengers):
            try:
                # each challenger takes the event as its own spec does (as the champion
                # took it, unless its spec types a feature otherwise)
                mine = challenger.spec.conform(features)
                again = passed if mine is features else None
                value, scores, latency = self._call(challenger, mine)
                shadows.append(self._encode(challenger, event, mine, value, scores, latency,
                                            now_ms, again))  # fmt: skip
            except (DriftlineError, ValueError) as exc:  # shadow failures never block serving
                errors.append(
                    exc
                    if isinstance(exc, ModelError)
                    else ModelError(
                        getattr(exc, "reason", "model_error"), str(exc), model, challenger.version
                    )
                )
                continue
            others.append({"version": challenger.version, "prediction": value, "scores": scores})
        try:
            prediction = self._encode(champion, event, features, *made, now_ms, passed,
                                     others or None)  # fmt: skip
        except ModelError as exc:
            if not others or exc.reason != "too_large":
                raise
            # the challengers' predictions made it too large: serve the champion without
            versions = ", ".join(o["version"] for o in others)
            errors.append(ModelError("too_large", f"{exc.detail}; served without the "
                                     "challengers' predictions", model, versions))  # fmt: skip
            prediction = self._encode(champion, event, features, *made, now_ms, passed)
        return Scored(model, champion.version, event["event_time_ms"], prediction,
                      tuple(shadows), tuple(errors))  # fmt: skip

    def _call(
        self, served: Servable, features: Mapping[str, Any]
    ) -> tuple[Any, dict[str, float], int]:
        """``served``'s prediction, scores and latency (µs); ModelError if it raises or
        returns a value or score that is not finite."""
        t0 = time.perf_counter_ns()
        try:
            value, scores = served.predict_one(features)
        except Exception as exc:  # a model's own bug must not stop the stream
            raise ModelError(
                "model_error",
                f"{served.name} {served.version} raised {exc!r}",
                served.name,
                served.version,
            ) from exc
        latency_us = (time.perf_counter_ns() - t0) // 1000
        if not _finite(value, scores):
            raise ModelError(
                "non_finite_output",
                f"{served.name} {served.version} returned {value!r} with scores {scores!r}",
                served.name,
                served.version,
            )
        return value, scores, latency_us

    def _encode(
        self,
        served: Servable,
        event: Mapping[str, Any],
        features: Mapping[str, Any],
        value: Any,
        scores: dict[str, float],
        latency_us: int,
        now: int,
        passed: bytes | None = None,
        challengers: list[dict[str, Any]] | None = None,
    ) -> bytes:
        """The encoded Prediction; ``passed`` holds the event's features and segment as
        Avro bytes (from the passthrough), or None to encode ``features`` (as the spec
        took them) and the event's segment."""
        record = {
            "event_id": event["event_id"],
            "model": served.name,
            "version": served.version,
            "event_time_ms": event["event_time_ms"],
            "predicted_at_ms": now,
            "prediction": value,
            "scores": scores,
            "latency_us": latency_us,
            "served_by": "driftline",
            "challengers": challengers,
        }
        if passed is not None and self._through is not None:
            encoded = self._through.encode(record, passed)
        else:
            record["features"] = features
            record["segment"] = event["segment"]
            encoded = self._codec.encode(PREDICTION, record)
        if len(encoded) > MAX_PREDICTION_BYTES:  # the event fits, so the model's output did it
            raise ModelError(
                "too_large",
                f"{served.name} {served.version} returned a Prediction of {len(encoded)} bytes "
                f"(at most {MAX_PREDICTION_BYTES}): {len(scores)} scores"
                + (f", {len(challengers)} challengers" if challengers else ""),
                served.name,
                served.version,
            )
        return encoded
