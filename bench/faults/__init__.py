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
recovery time of every fault. Exit status 1 on any loss, duplicate, miscount, order
violation, unrecovered or unfired fault; the report's last lines name each.

    python -m bench.faults                 # full size: 100,000 events (~10 min)
    python -m bench.faults --quick         # CI size (tests/integration/test_faults.py)
    python -m bench.faults --quick --no-faults
    python -m bench.faults --quick --layout split   # roles apart: w0 --role score, w1 --role join
"""
