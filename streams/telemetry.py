"""The worker's Prometheus metrics, declared once per process.

Labels are few and of low cardinality (stage, reason, kind, model, version, segment).
Hot loops count into plain dicts per batch and add to these once per batch, so no
label lookup happens per event.
"""

from __future__ import annotations

from collections import Counter as Tally

from prometheus_client import Counter, Gauge, Histogram

EVENTS_IN = Counter("driftline_events_in_total", "Records read, by pipeline stage.", ["stage"])
EVENTS_OUT = Counter(
    "driftline_events_out_total", "Records published, by pipeline stage.", ["stage"]
)
DEAD_LETTERS = Counter(
    "driftline_dead_letters_total", "Records sent to the dead-letter topic.", ["stage", "reason"]
)
JOIN_RESULTS = Counter(
    "driftline_join_results_total",
    "Join results: joined, duplicate_label, duplicate_prediction, late_label, "
    "late_prediction, expired_prediction, orphan_label.",
    ["kind"],
)
JOIN_PENDING = Gauge("driftline_join_pending", "Entries held in the join store.")
LABEL_DELAY = Histogram(
    "driftline_label_delay_seconds",
    "Label time minus event time of joined outcomes.",
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600),
)
SCORING_LATENCY = Histogram(
    "driftline_scoring_latency_seconds",
    "Model call latency per event (sampled: one event per batch).",
    buckets=(1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 2.5e-2, 0.1),
)
BATCH_SECONDS = Histogram(
    "driftline_batch_seconds",
    "Time to process and commit one batch, by stage.",
    ["stage"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
)
TRANSACTION_SECONDS = Histogram(
    "driftline_transaction_seconds",
    "Where a batch's transaction spends its time, by loop and phase: work (begin, then "
    "read, process and produce the batch), deliver (wait until its records are written), "
    "offsets (add the input offsets), commit.",
    ["loop", "phase"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
)
TRANSACTIONS_RETRIED = Counter(
    "driftline_transactions_retried_total",
    "Batches whose transaction was given up and the batch read again, by loop and why: "
    "aborted (an error that needs an abort), fenced (the producer was replaced), stuck "
    "(send_offsets_to_transaction hung past its timeout; the producer was replaced).",
    ["loop", "why"],
)


class TxnMetrics:
    """``driftline_transaction_seconds`` and ``driftline_transactions_retried_total`` as
    the :class:`driftline.kafka.txn.TxnObserver` of the worker's loops."""

    def phase(self, loop: str, phase: str, seconds: float) -> None:
        TRANSACTION_SECONDS.labels(loop, phase).observe(seconds)

    def retried(self, loop: str, why: str) -> None:
        TRANSACTIONS_RETRIED.labels(loop, why).inc()


TXN_METRICS = TxnMetrics()
MODEL_METRIC = Gauge(
    "driftline_model_metric",
    "Rolling metric of a served model version over a window.",
    ["model", "version", "segment", "window", "metric"],
)
MODEL_BASELINE = Gauge(
    "driftline_model_baseline",
    "Validation metric of a model version (what rolling metrics are compared with).",
    ["model", "version", "metric"],
)
DRIFT_SCORE = Gauge(
    "driftline_drift_score",
    "Drift statistic per model and feature (psi, ks).",
    ["model", "version", "feature", "statistic"],
)
DRIFT_DETECTIONS = Counter(
    "driftline_drift_detections_total",
    "Drift incidents opened or escalated, by kind.",
    ["model", "kind"],
)
ALERTS = Counter(
    "driftline_alerts_total",
    "Alert records published: incidents opened, escalated or resolved, and notices.",
    ["model", "kind", "severity"],
)
INCIDENT_FIRING = Gauge(
    "driftline_incident_firing",
    "1 while an incident of the model and cause is firing, 0 for a while after it "
    "resolved (version: the one it opened on). Alertmanager's source, through the rule "
    "in infra/prometheus/rules/incidents.yml.",
    ["model", "cause", "severity", "version"],
)
RETRAIN_TRIGGERS = Counter(
    "driftline_retrain_triggers_total", "Retrain triggers published.", ["model"]
)
MODEL_VERSION_INFO = Gauge(
    "driftline_model_version_info",
    "1 for the version served in each stage (champion, challenger).",
    ["model", "version", "stage"],
)
FEATURE_IMPORTANCE = Gauge(
    "driftline_feature_importance",
    "Permutation importance of a feature for a served version (the held-out metric's "
    "mean drop when the feature is shuffled, from the version's lineage).",
    ["model", "version", "feature"],
)
ARTIFACTS_REJECTED = Counter(
    "driftline_artifacts_rejected_total",
    "Model versions refused because their digest or signature did not match.",
    ["model", "reason"],
)
MONITOR_ERRORS = Counter(
    "driftline_monitor_errors_total",
    "Join steps the monitor failed on (logged; the join went on).",
)
CONSUMER_LAG = Gauge(
    "driftline_consumer_lag", "Messages behind the end of a topic, by stage.", ["stage"]
)


def add_tally(counter: Counter, tally: Tally[tuple[str, ...]]) -> None:
    """Add a per-batch tally of label tuples to ``counter``, one inc per label set."""
    for labels, n in tally.items():
        counter.labels(*labels).inc(n)
