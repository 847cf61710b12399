"""Fault harness (issue 7): exact outputs through SIGKILLs, a burst of kills, a hard
broker restart and a SIGSTOPped worker, on a broker of its own.

It produces ``--events`` feature events (three models: ``churn``, whose events all get a
label 500 events later and some a duplicate or two; ``twin``, which scores every churn
event under the same event_id and gets its own labels and duplicates; ``expiring``,
with a 5 s TTL, whose predictions get no label, plus labels for ids never predicted),
while N workers run under a supervisor. Full schedule: each worker SIGKILLed three
times, all killed at once, the broker SIGKILLed and restarted, a worker SIGSTOPped for
30-60 s; scheduled between 20% and 70% of the events, and none fires after 92%. Then it
reads the output topics (read_committed) and checks every event_id of every model: one
prediction each, one outcome per churn and twin event carrying its own model's first
label, exactly the expected dead letters (duplicate_label per model,
expired_prediction, orphan_label) and no other; order per key; and reports the
recovery time of every fault. The trainer runs beside the workers with its live loop:
churn's online challenger learns every outcome and checkpoints its state to the registry
with the offsets it holds; the trainer is SIGKILLed (once quick, three times full, at its
own times: bench/faults/plan.py, trainer_kills) and restarted, and every checkpoint must
hold exactly the committed outcomes inside its ranges: none learnt twice, none skipped
(bench/faults/learning.py). Exit status 1 on any loss, duplicate, miscount, order
violation, unrecovered or unfired fault; the report's last lines name each.

    python -m bench.faults                 # full size: 100,000 events (~10 min)
    python -m bench.faults --quick         # CI size (tests/integration/test_faults.py)
    python -m bench.faults --quick --no-faults
    python -m bench.faults --quick --layout split   # roles apart: w0 --role score, w1 --role join
    python -m bench.faults --brokers 3     # on a cluster of three nodes (issue 26)
    python -m bench.faults --brokers 3 --quick   # CI: tests/integration/test_cluster.py

With ``--brokers 3`` the run has a cluster of three KRaft nodes of its own (replication
factor 3, min.insync.replicas 2; infra/kafka/cluster.sh), and the broker's restart gives
way to the cluster's faults (bench/faults/cluster.py): a SIGKILL of the node leading the
most partitions, a rolling restart, a SIGKILL of the active controller and a node
SIGSTOPped until it is out of every ISR, next to the worker faults (one SIGKILL per
worker, the burst, the SIGSTOP). ``--quick`` there is a rolling restart and a leader
SIGKILL. The report adds, per fault, the longest stop of the outputs, their end-to-end
latency (bench/faults/timeline.py) and the transactions read again
(``driftline_transactions_retried_total``, bench/faults/retries.py).
"""
