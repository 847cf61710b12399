"""``python -m bench.faults``: see bench/faults/__init__.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.faults.report import render
from bench.faults.run import (
    ONLY,
    QUICK_CLUSTER_EVENTS,
    QUICK_CLUSTER_RATE,
    QUICK_EVENTS,
    QUICK_RATE,
    Options,
    run,
)
from bench.faults.workers import LAYOUTS


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__)
    ap.add_argument(
        "--events",
        type=int,
        help=f"feature events (default 100000; --quick {QUICK_EVENTS}, with --brokers 3 "
        f"{QUICK_CLUSTER_EVENTS})",
    )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--partitions", type=int, default=4, help="data partitions")
    ap.add_argument(
        "--rate",
        type=float,
        help=f"feature events/s (default 300, with --brokers 3 200; --quick {QUICK_RATE:.0f}, "
        f"with --brokers 3 {QUICK_CLUSTER_RATE:.0f})",
    )
    ap.add_argument("--quick", action="store_true", help="the reduced size and schedule of CI")
    ap.add_argument("--no-faults", action="store_true", help="the same run without faults")
    ap.add_argument("--only", choices=ONLY, help="one fault of this kind, at 30%% of the events")
    ap.add_argument(
        "--brokers", type=int, choices=(1, 3), default=1,
        help="3: a cluster of three KRaft nodes at replication factor 3, min.insync.replicas "
        "2, and its faults (a leader SIGKILL, a rolling restart, a controller SIGKILL, a "
        "node paused out of the ISR) instead of the single broker's restart",
    )  # fmt: skip
    ap.add_argument(
        "--layout", choices=LAYOUTS, default="all",
        help="all: every worker runs every role (default); split: even workers run "
        "--role score, odd ones --role join",
    )  # fmt: skip
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="run in DIR and keep it (broker data, logs)")
    a = ap.parse_args(argv)
    quick_events, quick_rate = (
        (QUICK_EVENTS, QUICK_RATE) if a.brokers == 1 else (QUICK_CLUSTER_EVENTS, QUICK_CLUSTER_RATE)
    )
    # a cluster's full schedule has more faults, and a rolling restart takes 45-100 s:
    # 500 s of events leave room for every one before 92% of them
    full_rate = 300.0 if a.brokers == 1 else 200.0
    o = Options(events=a.events or (quick_events if a.quick else 100_000), workers=a.workers,
                partitions=a.partitions, rate=a.rate or (quick_rate if a.quick else full_rate),
                quick=a.quick, faults=not a.no_faults, seed=a.seed, keep=a.keep,
                only=a.only, brokers=a.brokers, layout=a.layout)  # fmt: skip
    where = "one broker" if o.brokers == 1 else f"{o.brokers} brokers, replication factor 3"
    print(f"fault harness: {where}, {o.events} events, {o.workers} workers ({o.layout} layout), "
          f"{o.partitions} partitions, "
          f"{o.rate:.0f} events/s, {'quick' if o.quick else 'full'} schedule"
          f"{'' if o.faults else ' (no faults)'}{f' (only a {o.only})' if o.only else ''}",
          flush=True)  # fmt: skip
    r = run(o)
    print(render(r))
    return 0 if r.ok else 1


if __name__ == "__main__":
    sys.exit(main())
