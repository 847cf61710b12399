"""When to retrain a model: a pure, clock-injected trigger policy with serializable state.

Reasons combine: ``manual`` (``request``), ``schedule`` (every ``schedule_ms``),
``outcome_count`` (``every_n_outcomes`` new outcomes), ``performance_degradation``
(``observe_snapshot``), ``estimated_performance_degradation`` (``observe_estimate``, the
CBPE estimate before labels; off unless ``on_estimated_degradation``) and
``concept_drift`` / ``feature_drift`` / ``prediction_drift`` (``observe_drift``).
Pending reasons fire together as one RetrainTrigger dict when

* no trigger is in flight for the model (cleared by a version trained for it, see
  ``on_version``, or after ``inflight_timeout_ms``),
* ``cooldown_ms`` has passed since the last trigger (``manual`` skips the cooldown; so does
  ``post_change_data`` alone, which neither waits for it nor starts it: its triggers are
  spaced by the data they wait for, and must not delay the answer to the next drift), and
* there are at least ``min_rows`` rows to train on, whatever the reason: when a drift
  event estimated a change point, ``min_rows`` outcomes came after it (or
  ``drift_max_wait_ms`` passed); the trainer then gets the post-change data only
  (``window_start_ms`` at the change, ``last_n`` the post-change rows up to ``max_rows``).
  Otherwise it gets the last ``last_n`` outcomes, and at least ``min_rows`` outcomes must
  have been counted. ``manual`` honours it too unless ``request(force=True)``, which
  also skips the change-point wait and the trigger in flight, and marks the trigger
  ``evidence["force"]`` (the trainer then trains on however few rows there are).

After a trigger that trained on post-change rows, ``post_change_data`` fires each time the
rows after that change point have grown ``growth`` times (2,000, 4,000, 8,000, ...) until
the window reaches ``max_rows`` (``last_n`` without it; a last step of less than half a
growth step, ``sqrt(growth)`` times, is skipped): the first answer to a drift
learns from what little post-change data there is, later ones from more of it, and the
gate promotes them only if they beat the champion. A later change point restarts it;
a trigger without one (a feature drift, a manual retrain on the last N) ends it, and so
does a rejected first answer to a change point: the champion beat a model of the
post-change data on post-change data, so the change point was no change worth learning.

Degradation has hysteresis: it must hold for ``degradation_evaluations`` consecutive 'all'
snapshots of the champion, and after a trigger it re-arms only once every watched metric
is back within ``clear_ratio`` of its margin (or a new champion arrives). A burst of drift
signals while one reason is pending, waiting or in flight yields one trigger. The
idempotency key hashes the model, champion, trigger sequence number, reasons and window,
so replaying the same inputs on restored state (after a crash) yields the same key.

>>> policy = RetrainPolicy("churn", cooldown_ms=0, min_rows=100)
>>> policy.on_version("v1", "champion", created_at_ms=0, now_ms=0)
>>> policy.request(now_ms=1) is None  # no outcome yet: the manual request waits
True
>>> policy.state["inflight"] = None; policy.state["pending"] = {}  # (forget it)
>>> policy.observe_outcomes(1_000, now_ms=1)
>>> event = DriftEvent("concept_drift", "churn", "v1", "adwin", 5, n=1_000, since_change=40,
...                    change_time_ms=900)
>>> policy.observe_drift(event, now_ms=2) is None  # 40 post-change rows: wait for 100
True
>>> policy.observe_outcomes(60, now_ms=3)
>>> trigger = policy.tick(now_ms=4)
>>> trigger["reasons"], trigger["window_start_ms"], trigger["last_n"]
(['concept_drift'], 900, 100)
>>> policy.observe_drift(event, now_ms=5) is None  # in flight
True
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

from driftline.core.watch.alerts import HIGHER_IS_BETTER, AlertRules, degradations
from driftline.core.watch.concept_drift import DriftEvent

__all__ = ["MIN_ROWS", "REASONS", "AlertRules", "RetrainPolicy"]

MIN_ROWS = 2_000
"""Default ``min_rows``: no trigger before this many rows to train on."""

REASONS = (
    "manual",
    "schedule",
    "outcome_count",
    "performance_degradation",
    "estimated_performance_degradation",
    "concept_drift",
    "feature_drift",
    "prediction_drift",
    "post_change_data",
)
DRIFT_REASONS = ("concept_drift", "feature_drift", "prediction_drift")
_NAMESPACE = uuid.UUID("0b7e4f8e-3d6a-4b61-8f0c-5b2d1f7a9c21")


def _fresh_state() -> dict[str, Any]:
    return {
        "seq": 0,
        "champion": None,
        "inflight": None,
        "last_trigger_ms": None,
        "schedule_anchor_ms": None,
        "outcomes": 0,
        "outcomes_at_trigger": 0,
        "pending": {},
        "streak": 0,
        "armed": True,
        "growth": None,
        "est_streak": 0,
        "est_armed": True,
    }


class RetrainPolicy:
    """Retrain trigger policy of one model (see the module docstring).

    Parameters
    ----------
    model
        The model it watches; events of other models are ignored.
    schedule_ms, every_n_outcomes
        Periodic reasons; None turns them off.
    on_degradation, drift_reasons
        Whether degradation triggers, and which drift kinds do.
    on_estimated_degradation
        Whether an estimated degradation (CBPE, before labels:
        :meth:`observe_estimate`) triggers, with the same hysteresis, margin and
        cooldown as the realized one (reason ``estimated_performance_degradation``).
    degradation_evaluations, margin, relative_margin, clear_ratio, min_count, watch
        Degradation hysteresis: K consecutive degraded snapshots (as in ``AlertRules``,
        with ``min_count`` outcomes at least) trigger; re-armed when every metric is worse
        by at most ``clear_ratio`` times its margin.
    degradation_window
        Only snapshots whose window starts with this are judged (None: all); one window
        kind keeps "consecutive" meaningful when count and time snapshots interleave.
    cooldown_ms, inflight_timeout_ms
        Least time between two triggers; how long a trigger stays in flight at most.
    min_rows, last_n, max_rows, drift_max_wait_ms
        Training window: rows needed before any reason fires (post-change rows after a
        change point, else outcomes counted), window without a change point, cap on
        post-change rows, longest wait for ``min_rows`` post-change rows before falling
        back to the last ``last_n`` (None: no limit; each new change point restarts the
        count of post-change rows, not this clock).
    growth
        After a trigger on post-change rows, retrain when they have grown this many times
        (until the window reaches ``max_rows``, else ``last_n``); None turns it off.

    """

    def __init__(
        self,
        model: str,
        *,
        schedule_ms: int | None = None,
        every_n_outcomes: int | None = None,
        on_degradation: bool = True,
        on_estimated_degradation: bool = False,
        drift_reasons: tuple[str, ...] | list[str] = DRIFT_REASONS,
        degradation_evaluations: int = 3,
        degradation_window: str | None = "count:",
        margin: float = 0.05,
        relative_margin: float = 0.2,
        clear_ratio: float = 0.5,
        min_count: int = 200,
        watch: list[str] | None = None,
        cooldown_ms: int = 3_600_000,
        inflight_timeout_ms: int = 6 * 3_600_000,
        min_rows: int = MIN_ROWS,
        last_n: int = 20_000,
        max_rows: int | None = None,
        drift_max_wait_ms: int | None = 6 * 3_600_000,
        growth: float | None = 2.0,
    ) -> None:
        for name, value in [
            ("schedule_ms", schedule_ms),
            ("every_n_outcomes", every_n_outcomes),
            ("max_rows", max_rows),
            ("drift_max_wait_ms", drift_max_wait_ms),
        ]:
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, not {value!r}")
        unknown = set(drift_reasons) - set(DRIFT_REASONS)
        if unknown:
            raise ValueError(f"unknown drift reasons {sorted(unknown)}")
        if degradation_evaluations < 1 or min_count < 1 or min_rows < 1 or last_n < 1:
            raise ValueError("degradation_evaluations, min_count, min_rows, last_n must be >= 1")
        if not 0 < margin <= 1 or not 0 < relative_margin <= 1 or not 0 <= clear_ratio < 1:
            raise ValueError("margins must be in (0, 1], clear_ratio in [0, 1)")
        if cooldown_ms < 0 or inflight_timeout_ms < 1:
            raise ValueError("cooldown_ms must be >= 0, inflight_timeout_ms >= 1")
        if max_rows is not None and max_rows < min_rows:
            raise ValueError("max_rows must be >= min_rows")
        if growth is not None and not growth > 1:
            raise ValueError(f"growth must be > 1 or None, not {growth!r}")
        self.model = model
        self.config: dict[str, Any] = {
            "schedule_ms": schedule_ms,
            "every_n_outcomes": every_n_outcomes,
            "on_degradation": on_degradation,
            "on_estimated_degradation": on_estimated_degradation,
            "drift_reasons": list(drift_reasons),
            "degradation_evaluations": degradation_evaluations,
            "degradation_window": degradation_window,
            "margin": margin,
            "relative_margin": relative_margin,
            "clear_ratio": clear_ratio,
            "min_count": min_count,
            "watch": watch,
            "cooldown_ms": cooldown_ms,
            "inflight_timeout_ms": inflight_timeout_ms,
            "min_rows": min_rows,
            "last_n": last_n,
            "max_rows": max_rows,
            "drift_max_wait_ms": drift_max_wait_ms,
            "growth": growth,
        }
        self.state = _fresh_state()

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible settings and state, for a changelogged table."""
        return {
            "model": self.model,
            "config": dict(self.config),
            "state": json.loads(json.dumps(self.state)),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RetrainPolicy:
        """The policy ``to_dict`` described, state included."""
        policy = cls(d["model"], **d["config"])
        policy.state = {**_fresh_state(), **json.loads(json.dumps(d["state"]))}
        return policy

    # -- inputs ---------------------------------------------------------------------------

    def request(
        self, now_ms: int, requested_by: str = "user", *, force: bool = False
    ) -> dict[str, Any] | None:
        """On-demand retrain: skips the cooldown and the change-point wait; waits for
        ``min_rows`` outcomes and an in-flight trigger unless ``force``. Returns the
        trigger, or None if queued."""
        if force:
            self.state["inflight"] = None
        self.state["pending"]["manual"] = {
            "since_ms": now_ms,
            "evidence": {"requested_by": requested_by},
            "force": force,
        }
        return self.tick(now_ms)

    def observe_outcomes(self, n: int, now_ms: int) -> None:
        """Count ``n`` new outcomes of the model (call before ``observe_drift``)."""
        if n < 0:
            raise ValueError("n must be >= 0")
        self.state["outcomes"] += n

    def _judges(self, snapshot: Mapping[str, Any], enabled: bool) -> bool:
        """Whether a snapshot is one this policy judges: this model's champion on
        segment 'all', enough rows, and its kind of reason enabled."""
        return (
            enabled
            and snapshot["model"] == self.model
            and snapshot["segment"] == "all"
            and self._is_champion(snapshot["version"])
            and snapshot["count"] >= self.config["min_count"]
        )

    def _streak(
        self,
        key: str,
        reason: str,
        worse: Mapping[str, Any] | None,
        cleared: bool,
        snapshot: Mapping[str, Any],
        now_ms: int,
    ) -> None:
        """Count one judgement into the streak ``key``: ``worse`` (the evidence of a
        degradation, or None) extends it and, once armed and long enough, makes
        ``reason`` pending; otherwise the streak resets and ``cleared`` re-arms it."""
        st, cfg = self.state, self.config
        streak, armed = f"{key}streak", f"{key}armed"
        st.setdefault(streak, 0)
        st.setdefault(armed, True)
        if worse is None:
            st[streak] = 0
            if cleared:
                st[armed] = True
            return
        st[streak] += 1
        if st[armed] and st[streak] >= cfg["degradation_evaluations"]:
            self._pend(reason, now_ms, {
                **worse, "window": snapshot["window"], "count": snapshot["count"],
                "evaluations": st[streak],
            })  # fmt: skip

    def observe_snapshot(self, snapshot: Mapping[str, Any], now_ms: int) -> dict[str, Any] | None:
        """Judge one MetricSnapshot of the champion on segment 'all' for degradation."""
        cfg = self.config
        if not self._judges(snapshot, cfg["on_degradation"]) or not snapshot["window"].startswith(
            cfg["degradation_window"] or ""
        ):
            return self.tick(now_ms)
        watch = None if cfg["watch"] is None else frozenset(cfg["watch"])
        ds = degradations(snapshot, cfg["margin"], cfg["relative_margin"], watch)
        worse = None
        if ds and ds[0].ratio > 1:
            d = ds[0]
            worse = {
                "metric": d.metric, "value": d.value, "baseline": d.baseline,
                "worse_by": d.worse_by, "margin": d.margin,
            }  # fmt: skip
        cleared = not ds or ds[0].ratio <= cfg["clear_ratio"]
        self._streak("", "performance_degradation", worse, cleared, snapshot, now_ms)
        return self.tick(now_ms)

    def observe_estimate(self, snapshot: Mapping[str, Any], now_ms: int) -> dict[str, Any] | None:
        """Judge one CBPE snapshot (window ``estimate:N``) of the champion on segment
        'all': degraded when an estimated metric of ``watch`` is more than ``margin``
        below its baseline and its band's upper end below the baseline;
        ``degradation_evaluations`` in a row make the reason pending; re-armed when every
        estimate is within ``clear_ratio`` margins of its baseline."""
        cfg = self.config
        if not self._judges(snapshot, cfg["on_estimated_degradation"]):
            return self.tick(now_ms)
        metrics, base = snapshot["metrics"], snapshot.get("baseline") or {}
        watch = cfg["watch"]
        judged = []
        for name in sorted(HIGHER_IS_BETTER):
            value = metrics.get(f"estimated_{name}")
            if value is None or name not in base or (watch is not None and name not in watch):
                continue
            upper = metrics.get(f"estimated_{name}_upper", value)
            judged.append((base[name] - value, upper < base[name], name, value, base[name]))
        worse_all = [j for j in judged if j[0] > cfg["margin"] and j[1]]
        worse = None
        if worse_all:
            drop, _, name, value, b = max(worse_all)
            worse = {
                "metric": name, "value": value, "baseline": b, "worse_by": drop,
                "margin": cfg["margin"],
            }  # fmt: skip
        cleared = all(j[0] <= cfg["clear_ratio"] * cfg["margin"] for j in judged)
        self._streak("est_", "estimated_performance_degradation", worse, cleared, snapshot, now_ms)
        return self.tick(now_ms)

    def observe_drift(self, event: DriftEvent, now_ms: int) -> dict[str, Any] | None:
        """Take one drift event of the champion; the latest change point wins."""
        st = self.state
        if (
            event.model != self.model
            or not self._is_champion(event.version)
            or event.kind not in self.config["drift_reasons"]
        ):
            return self.tick(now_ms)
        old = st["pending"].get(event.kind)
        entry = self._pend(event.kind, now_ms, event.evidence())
        entry["signals"] = (old or {}).get("signals", 0) + 1
        if event.since_change is not None:
            entry["change_at"] = max(0, st["outcomes"] - event.since_change)
            entry["change_time_ms"] = event.change_time_ms
        elif old is not None and "change_at" in old:
            entry["change_at"], entry["change_time_ms"] = old["change_at"], old["change_time_ms"]
        return self.tick(now_ms)

    def _is_champion(self, version: str) -> bool:
        """Whether ``version`` is the champion (any version while none is known)."""
        champion = self.state["champion"]
        return champion is None or version == champion

    def on_version(
        self,
        version: str,
        stage: str,
        created_at_ms: int,
        now_ms: int,
        trigger_id: str | None = None,
    ) -> None:
        """A ModelVersion record of the model: clears the in-flight trigger if the version
        answers it (its lineage's trigger id) or was created after it; a new champion
        resets degradation and drops the pending drift and degradation reasons; a rejected
        first answer to a change point stops ``post_change_data``."""
        st = self.state
        g = st["growth"]
        if stage == "rejected" and g is not None and g["first"] and trigger_id == g["trigger_id"]:
            st["growth"] = None
        inflight = st["inflight"]
        if inflight is not None and (
            trigger_id == inflight["trigger_id"] or created_at_ms >= inflight["since_ms"]
        ):
            st["inflight"] = None
        if stage == "champion" and version != st["champion"]:
            st["champion"] = version
            st["streak"], st["armed"] = 0, True
            for reason in (
                "performance_degradation",
                "estimated_performance_degradation",
                *DRIFT_REASONS,
            ):
                st["pending"].pop(reason, None)

    def tick(self, now_ms: int) -> dict[str, Any] | None:
        """Check the clock-driven reasons and fire the pending ones if allowed."""
        st, cfg = self.state, self.config
        if st["schedule_anchor_ms"] is None:
            st["schedule_anchor_ms"] = now_ms
        if st["inflight"] is not None and (
            now_ms - st["inflight"]["since_ms"] >= cfg["inflight_timeout_ms"]
        ):
            st["inflight"] = None
        if cfg["schedule_ms"] and now_ms - st["schedule_anchor_ms"] >= cfg["schedule_ms"]:
            self._pend(
                "schedule",
                now_ms,
                {"every_ms": cfg["schedule_ms"], "since_ms": st["schedule_anchor_ms"]},
            )
        new = st["outcomes"] - st["outcomes_at_trigger"]
        if cfg["every_n_outcomes"] and new >= cfg["every_n_outcomes"]:
            self._pend("outcome_count", now_ms, {"outcomes": new, "every": cfg["every_n_outcomes"]})
        due = self._growth_due()
        if due is not None and st["outcomes"] >= due:
            g = st["growth"]
            post = st["outcomes"] - g["change_at"]
            entry = self._pend("post_change_data", now_ms, {"rows": post, "trained_on": g["rows"]})
            entry["change_at"], entry["change_time_ms"] = g["change_at"], g["change_time_ms"]
        return self._fire(now_ms)

    @property
    def outcomes(self) -> int:
        """Outcomes counted so far."""
        return int(self.state["outcomes"])

    def due_outcomes(self, now_ms: int) -> int | None:
        """The outcome count at which a count-driven reason (post-change rows reaching
        ``min_rows``, ``post_change_data``, ``every_n_outcomes``) can fire, so the caller
        can ``tick`` on that outcome rather than at its next timer; None when nothing waits
        for outcomes or a trigger is in flight or cooling down."""
        st, cfg = self.state, self.config
        if st["inflight"] is not None:
            return None
        dues = []
        changes = [p["change_at"] for p in st["pending"].values() if "change_at" in p]
        if changes:
            dues.append(max(changes) + cfg["min_rows"])
        elif st["pending"] and st["outcomes"] < cfg["min_rows"]:
            dues.append(cfg["min_rows"])
        if cfg["every_n_outcomes"]:
            dues.append(st["outcomes_at_trigger"] + cfg["every_n_outcomes"])
        last = st["last_trigger_ms"]
        if last is not None and now_ms - last < cfg["cooldown_ms"]:
            dues = []  # the timer's tick fires them once the cooldown is over
        growth = self._growth_due()
        if growth is not None:
            dues.append(growth)
        return min(dues) if dues else None

    def _growth_due(self) -> int | None:
        """The outcome count at which ``post_change_data`` is due (None: not growing)."""
        g, cfg = self.state["growth"], self.config
        if g is None or not cfg["growth"]:
            return None
        cap = cfg["max_rows"] or cfg["last_n"]
        if g["rows"] * cfg["growth"] ** 0.5 >= cap:
            return None
        return int(g["change_at"] + min(cap, g["rows"] * cfg["growth"]))

    # -- firing ---------------------------------------------------------------------------

    def _pend(self, reason: str, now_ms: int, evidence: Mapping[str, Any]) -> dict[str, Any]:
        old = self.state["pending"].get(reason)
        entry = {"since_ms": old["since_ms"] if old else now_ms, "evidence": dict(evidence)}
        self.state["pending"][reason] = entry
        return entry

    def _fire(self, now_ms: int) -> dict[str, Any] | None:
        st, cfg = self.state, self.config
        pending: dict[str, Any] = st["pending"]
        if not pending or st["inflight"] is not None:
            return None
        manual = "manual" in pending
        forced = manual and bool(pending["manual"].get("force"))
        last = st["last_trigger_ms"]
        cools = not manual and set(pending) != {"post_change_data"}
        if cools and last is not None and now_ms - last < cfg["cooldown_ms"]:
            return None
        changes = [p for p in pending.values() if "change_at" in p]
        change = max(changes, key=lambda p: p["change_at"]) if changes else None
        post = None if change is None else st["outcomes"] - change["change_at"]
        if post is not None and post < cfg["min_rows"] and not manual:
            waited = now_ms - min(p["since_ms"] for p in changes)
            if cfg["drift_max_wait_ms"] is None or waited < cfg["drift_max_wait_ms"]:
                return None
        if change is not None and post is not None and post >= cfg["min_rows"]:
            start = change.get("change_time_ms")
            last_n = post if cfg["max_rows"] is None else min(post, cfg["max_rows"])
            growth = {
                "change_at": change["change_at"],
                "change_time_ms": start,
                "rows": last_n,
                "first": "post_change_data" not in pending,
            }
        else:
            if st["outcomes"] < cfg["min_rows"] and not forced:
                return None  # every reason waits for min_rows rows to train on
            start, last_n, growth = None, cfg["last_n"], None
        reasons = [r for r in REASONS if r in pending]
        evidence: dict[str, Any] = {"outcomes": st["outcomes"]}
        if forced:
            evidence["force"] = True
        for r in reasons:
            entry = pending[r]
            evidence.update({f"{r}.{k}": v for k, v in entry["evidence"].items()})
            if "signals" in entry:
                evidence[f"{r}.signals"] = entry["signals"]
        if post is not None:
            evidence["post_change_rows"] = post
        st["seq"] += 1
        key_src = json.dumps([self.model, st["champion"], st["seq"], reasons, start, last_n])
        key = hashlib.sha256(key_src.encode()).hexdigest()[:32]
        trigger_id = str(uuid.uuid5(_NAMESPACE, key))
        if growth is not None:
            growth["trigger_id"] = trigger_id
        requested_by = pending["manual"]["evidence"]["requested_by"] if manual else "policy"
        st.update(
            inflight={"trigger_id": trigger_id, "key": key, "since_ms": now_ms},
            last_trigger_ms=st["last_trigger_ms"] if reasons == ["post_change_data"] else now_ms,
            schedule_anchor_ms=now_ms,
            outcomes_at_trigger=st["outcomes"],
            pending={},
            streak=0,
            armed=st["armed"] and "performance_degradation" not in reasons,
            est_streak=0,
            est_armed=st.get("est_armed", True)
            and "estimated_performance_degradation" not in reasons,
            growth=growth,
        )
        return {
            "trigger_id": trigger_id,
            "model": self.model,
            "idempotency_key": key,
            "reasons": reasons,
            "evidence": evidence,
            "window_start_ms": start,
            "window_end_ms": None,
            "last_n": last_n,
            "champion_version": st["champion"],
            "requested_by": requested_by,
            "created_at_ms": now_ms,
        }
