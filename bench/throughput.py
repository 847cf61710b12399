"""Throughput and latency: Driftline's scorer and worker against a plain confluent-kafka
loop doing the same per-event work, on the same broker in the same run (issue 6, part 1).

    python bench/throughput.py [--quick] [--events N]

Starts its own broker (infra/kafka/broker.sh, in a temp dir; ``--bootstrap`` uses one
that runs), trains a 10-feature churn model with ``driftline.core.lifecycle.training.bootstrap``
(``logistic_regression`` and ``hoeffding_tree``) and prints, per factory:

- events/s and CPU µs/event of (a1) ``ScorerLoop`` in process, (a2) a full
  ``driftline worker`` subprocess (scorer + join + monitor), (a3) the roles as two
  processes (``--role score`` + ``--role join``, CPU summed), (b) the plain loop and (b2)
  the plain loop with a plain join (a dict of pending predictions), each draining the
  same pre-filled features backlog, and the ratios to (b) and (b2);
- end-to-end latency p50/p99 at half of (a1)'s throughput (features produced at a fixed
  rate with their Kafka CreateTime), and of (a2) and (b) at half of (a2)'s;
- the join: label -> outcome throughput, latency at 5,000 labels/s and at half its
  capacity beside the exactly-once floor's at the same rates, bytes per pending
  prediction.

``--quick`` (CI: sizes only, no speed asserted) runs one factory with small sizes.
The modules are in bench/pipeline/.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.pipeline.cli import main

if __name__ == "__main__":
    main()
