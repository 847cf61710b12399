"""Concept drift on the error stream: ADWIN plus DDM / HDDM_A."""

from __future__ import annotations

import random

import pytest

from driftline.core.watch.concept_drift import ConceptDriftDetector, DriftEvent, outcome_error


def errors(rates: list[tuple[int, float]], seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [float(rng.random() < p) for n, p in rates for _ in range(n)]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"task": "ranking"}, "task"),
        ({"binary": "kswin"}, "binary"),
        ({"task": "regression", "binary": "ddm"}, "regression"),
        ({"delta": 0.0}, "delta"),
        ({"delta": 1.0}, "delta"),
        ({"warmup": -1}, "warmup"),
        ({"checkpoint_every": 0}, "checkpoint_every"),
        ({"recheck": -1}, "recheck"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConceptDriftDetector("m", "v1", **kwargs)


@pytest.mark.parametrize("binary", ["ddm", "hddm_a", None])
@pytest.mark.parametrize("rate", [0.05, 0.2])
def test_stationary_errors_raise_nothing_after_warmup(binary, rate):
    detector = ConceptDriftDetector("m", "v1", binary=binary, warmup=1_000)
    events = [detector.update(e, i) for i, e in enumerate(errors([(30_000, rate)], seed=3))]
    assert [e for e in events if e] == []


@pytest.mark.parametrize(
    ("binary", "before", "after"),
    [("ddm", 0.1, 0.4), ("hddm_a", 0.1, 0.4), (None, 0.1, 0.4), ("ddm", 0.2, 0.6)],
)
def test_abrupt_change_is_found_with_its_change_point(binary, before, after):
    detector = ConceptDriftDetector("m", "v1", binary=binary, warmup=500)
    stream = errors([(5_000, before), (3_000, after)], seed=1)
    events = [(i, e) for i, err in enumerate(stream) if (e := detector.update(err, i * 10))]
    i, first = events[0]
    assert 5_000 <= i < 5_600
    assert first.kind == "concept_drift" and first.n == i + 1
    if first.detector == "adwin":
        true_since = i + 1 - 5_000
        assert first.since_change is not None
        assert true_since <= first.since_change <= true_since + 700
        assert first.reference is not None and first.statistic is not None
        assert first.reference < first.statistic
        assert first.change_time_ms is not None
        assert abs(first.change_time_ms - (i + 1 - first.since_change) * 10) < 640
    else:
        assert first.detector == binary


def test_alarms_within_warmup_are_suppressed():
    detector = ConceptDriftDetector("m", "v1", warmup=10_000)
    stream = errors([(3_000, 0.05), (3_000, 0.6)])
    assert not any(detector.update(e, i) for i, e in enumerate(stream))
    assert detector.suppressed >= 1


def test_reset_starts_a_new_version_with_a_new_warmup():
    detector = ConceptDriftDetector("m", "v1", warmup=100)
    for i, e in enumerate(errors([(500, 0.1)])):
        detector.update(e, i)
    detector.reset("v2")
    assert (detector.version, detector.n, detector.suppressed) == ("v2", 0, 0)
    assert detector.adwin.width == 0


def test_regression_uses_absolute_errors_on_adwin_only():
    rng = random.Random(2)
    detector = ConceptDriftDetector("m", "v1", "regression", warmup=200)
    assert detector.binary is None and detector.detector is None
    found = None
    for i in range(6_000):
        label = rng.gauss(0, 1)
        prediction = label + rng.gauss(0, 0.1 if i < 3_000 else 1.0)
        event = detector.update_outcome(
            {"prediction": prediction, "label": label, "event_time_ms": i}
        )
        found = found or event
    assert found is not None and found.detector == "adwin" and found.n > 3_000


@pytest.mark.parametrize(
    ("checkpoint_every", "n", "since", "want"),
    [
        (10, 100, 5, 900),  # first post-change: outcome 96, in stretch 91..100 (t >= 900)
        (10, 100, 30, 700),  # outcome 71, stretch 71..80
        (10, 100, 100, 0),  # all of them
        (10, 105, 3, 1000),  # outcome 103, in the unfinished stretch 101..105
    ],
)
def test_change_point_to_event_time(checkpoint_every, n, since, want):
    detector = ConceptDriftDetector("m", "v1", checkpoint_every=checkpoint_every, history=100)
    for i in range(n):
        detector.update(0.0, i * 10)
    assert detector.change_time_ms(since) == want


def test_change_point_beyond_the_history_is_unknown():
    detector = ConceptDriftDetector("m", "v1", checkpoint_every=10, history=3)
    for i in range(100):
        detector.update(0.0, i)
    assert detector.change_time_ms(95) is None
    assert detector.change_time_ms(30) == 70


def test_stretch_time_is_the_oldest_event_time_in_it():
    detector = ConceptDriftDetector("m", "v1", checkpoint_every=4)
    for t in [40, 10, 30, 20, 90, 50, 70, 60]:  # labels arrive out of event-time order
        detector.update(0.0, t)
    assert detector.change_time_ms(4) == 50
    assert detector.change_time_ms(8) == 10


@pytest.mark.parametrize(
    ("prediction", "label", "task", "want"),
    [
        ("a", "a", "classification", 0.0),
        ("a", "b", "classification", 1.0),
        (True, False, "classification", 1.0),
        (2.5, 1.0, "regression", 1.5),
        (None, 1.0, "regression", None),
        (float("nan"), 1.0, "regression", None),
        ("x", 1.0, "regression", None),
    ],
)
def test_outcome_error(prediction, label, task, want):
    assert outcome_error({"prediction": prediction, "label": label}, task) == want


def test_drift_event_round_trips_and_gives_flat_evidence():
    event = DriftEvent(
        "concept_drift",
        "m",
        "v1",
        "adwin",
        123,
        n=5_000,
        statistic=0.4,
        reference=0.1,
        since_change=640,
        change_time_ms=99,
    )
    assert DriftEvent.from_dict(event.to_dict()) == event
    assert event.evidence() == {
        "detector": "adwin",
        "detected_at_ms": 123,
        "n": 5_000,
        "segment": "all",
        "statistic": 0.4,
        "reference": 0.1,
        "since_change": 640,
        "change_time_ms": 99,
    }


@pytest.mark.parametrize(("change_at", "error_after"), [(3_000, 0.5), (5_000, 0.3), (2_000, 0.8)])
def test_ddm_alarm_places_the_change_point_by_the_error_history(
    change_at: int, error_after: float
) -> None:
    """An error-free champion leaves DDM in warning from its first stray error (and one
    error alarms it), and ADWIN's kept window still holds pre-change outcomes: whichever
    alarms, the change point must come from the error history."""
    import random

    rng = random.Random(change_at)
    det = ConceptDriftDetector("m", "v1", binary="ddm", warmup=0)
    stray = {500}  # one error long before the change
    event = None
    for i in range(change_at + 3_000):
        err = (rng.random() < error_after) if i >= change_at else (i in stray)
        event = det.update(float(err), event_time_ms=i) or event
        if event is not None:
            break
    assert event is not None, "no alarm"
    assert det.n > change_at, f"false alarm at {det.n} by {event.detector}"
    true_since = det.n - change_at
    assert event.since_change is not None
    assert abs(event.since_change - true_since) <= 2 * det.checkpoint_every  # stretch-exact
    assert event.change_time_ms is not None
    assert abs(event.change_time_ms - change_at) <= 2 * det.checkpoint_every


@pytest.mark.parametrize("binary", ["ddm", None])
def test_a_falling_error_raises_nothing(binary):
    detector = ConceptDriftDetector("m", "v1", binary=binary, warmup=500)
    stream = errors([(5_000, 0.4), (5_000, 0.05)], seed=4)
    assert not any(detector.update(e, i) for i, e in enumerate(stream))
    assert detector.unconfirmed >= 1  # ADWIN saw the change; it is no degradation


def test_alarms_the_error_history_does_not_confirm_are_dropped():
    """Steady errors, 40 fresh versions of 3,000 outcomes: with alpha=None some noise
    alarms stand (DDM just after the warm-up); by default the history must show a rise."""
    raw = checked = unconfirmed = 0
    for seed in range(40):
        stream = errors([(3_000, 0.15)], seed=seed)
        a = ConceptDriftDetector("m", "v1", warmup=1_000, alpha=None)
        b = ConceptDriftDetector("m", "v1", warmup=1_000)
        for i, e in enumerate(stream):
            raw += a.update(e, i) is not None
            checked += b.update(e, i) is not None
        unconfirmed += b.unconfirmed
    assert raw >= 1 and checked == 0 and unconfirmed >= 1


def test_bad_alpha_raises():
    with pytest.raises(ValueError, match="alpha"):
        ConceptDriftDetector("m", "v1", alpha=1.5)


def test_a_change_inside_the_warmup_alarms_when_it_ends():
    """A drift right after a promotion: held back during the warm-up, not lost."""
    detector = ConceptDriftDetector("m", "v1", warmup=1_000)
    stream = errors([(400, 0.05), (2_000, 0.5)], seed=6)
    events = [(i, e) for i, err in enumerate(stream) if (e := detector.update(err, i))]
    assert events and events[0][0] == 1_000  # the (1-based) outcome 1,001
    assert events[0][1].since_change is not None
    assert abs(events[0][1].since_change - 601) <= 64


@pytest.mark.parametrize(("burst", "confirmed"), [(5, False), (30, True)])
def test_error_bursts_on_a_near_perfect_model(burst: int, confirmed: bool):
    """``burst`` errors in the last ~100 of 4,000 outcomes at a 0.6% error rate: five give
    z > 5 under the normal approximation, yet are a 1-in-1,000 binomial event, too common
    once the splits tried are counted; thirty are a change."""
    detector = ConceptDriftDetector("m", "v1", warmup=10_000)
    stream = [0.0] * 4_000
    for i in range(0, 3_880, 170):
        stream[i] = 1.0
    for k in range(burst):
        stream[3_990 - 4 * k] = 1.0
    for i, e in enumerate(stream):
        detector.update(e, i)
    assert detector.confirmed() is confirmed


def test_a_version_serving_into_a_drifted_stream_alarms_against_its_held_out_error():
    """Its live error never changes, so only its held-out error (primed) shows the drift."""
    stream = errors([(3_000, 0.5)], seed=8)
    blind = ConceptDriftDetector("m", "v2", warmup=1_000)
    primed = ConceptDriftDetector("m", "v2", warmup=1_000)
    primed.prime(0.05, 1_000, event_time_ms=0)
    assert not any(blind.update(e, i) for i, e in enumerate(stream))
    events = [(i, e) for i, err in enumerate(stream) if (e := primed.update(err, i))]
    assert events and events[0][0] == 1_000  # held through the warm-up of live outcomes
    first = events[0][1]
    assert first.n == 1_001 and first.since_change == 1_001  # all live outcomes
    assert first.change_time_ms == 0


def test_prime_checks_its_arguments():
    detector = ConceptDriftDetector("m", "v1")
    with pytest.raises(ValueError, match="error_rate"):
        detector.prime(1.5, 10, 0)
    detector.update(0.0, 0)
    with pytest.raises(ValueError, match="before its first update"):
        detector.prime(0.1, 10, 0)


def even_errors(n: int, rate: float) -> list[float]:
    """``n`` 0/1 errors at ``rate``, spread evenly (no sampling noise)."""
    return [float(int((i + 1) * rate) - int(i * rate)) for i in range(n)]


@pytest.mark.parametrize(("scan", "confirmed"), [(False, True), (True, False)])
def test_an_excursion_on_a_long_steady_history_is_no_change(scan: bool, confirmed: bool):
    """The false alarm measured on 200,000 stationary Agrawal outcomes: 121 errors in the
    last 544 of 14,544 outcomes at a steady 14.5% error (p = 1.6e-6 with 226 splits tried).
    The stretch was picked at both ends: counting only its starts confirmed it."""
    detector = ConceptDriftDetector("m", "v1", warmup=100_000, scan=scan)
    for i, e in enumerate(even_errors(14_000, 0.145) + even_errors(544, 121 / 544)):
        detector.update(e, i)
    assert detector.confirmed() is confirmed


@pytest.mark.parametrize("seed", range(5))
def test_a_real_rise_on_a_long_history_is_confirmed_quickly(seed: int):
    """After 14,000 outcomes at 14.5% (the scan correction at its largest), a rise to 40%
    still alarms within 200 outcomes."""
    detector = ConceptDriftDetector("m", "v1", warmup=1_000)
    stream = errors([(14_000, 0.145), (2_000, 0.4)], seed=seed)
    first = next((i for i, e in enumerate(stream) if detector.update(e, i)), None)
    assert first is not None and 14_000 <= first < 14_200


def test_an_unconfirmed_alarm_is_tested_again_at_the_next_stretch_ends():
    """0.1 -> 0.3 at outcome 3,000 (seed 25): the first alarm comes too early for the
    history to confirm; retested at the next stretch ends it stands at 3,071, where without
    the retest the next alarm came at 3,264."""
    stream = errors([(3_000, 0.1), (2_000, 0.3)], seed=25)
    firsts = []
    for recheck in (0, 4):
        detector = ConceptDriftDetector("m", "v1", warmup=500, recheck=recheck)
        events = [(i, e) for i, err in enumerate(stream) if (e := detector.update(err, i))]
        assert detector.unconfirmed >= 1
        firsts.append(events[0])
    (late, _), (early, event) = firsts
    assert 3_000 < early < late
    assert (early + 1) % 64 == 0  # at a stretch end
    assert event.since_change is not None and abs(event.since_change - (early - 2_999)) <= 64


def test_a_retest_stops_after_recheck_stretches():
    """An alarm on noise is retested at most ``recheck`` times, then forgotten."""
    detector = ConceptDriftDetector("m", "v1", warmup=100_000, recheck=2)
    for i, e in enumerate(even_errors(14_000, 0.145) + even_errors(544, 121 / 544)):
        detector.update(e, i)
    event = DriftEvent("concept_drift", "m", "v1", "adwin", 0, n=1)
    detector._recheck = (event, 2)
    steady = even_errors(3 * 64, 0.145)
    raised = [detector.update(e, 20_000 + i) for i, e in enumerate(steady)]
    assert not any(raised) and detector._recheck is None
