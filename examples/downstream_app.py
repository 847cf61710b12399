"""A downstream application: reads Driftline's predictions and prints them.

    python examples/downstream_app.py --bootstrap localhost:9092 --model churn

Without --count it runs until interrupted (or --idle-timeout seconds pass without a
prediction). Its consumer group is "downstream-example-<topic>": run two and they
share the partitions; a restart resumes after the last prediction it printed.
"""

from __future__ import annotations

import argparse
import sys

from driftline.client import Prediction, Subscriber
from driftline.settings import Settings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: settings)")
    parser.add_argument("--prefix", help="Driftline topic prefix (default: settings)")
    parser.add_argument("--model", help="only this model's predictions (default: all)")
    parser.add_argument("--count", type=int, default=0, help="stop after N predictions")
    parser.add_argument("--idle-timeout", type=float, help="stop after S seconds of silence")
    parser.add_argument(
        "--from-beginning", action="store_true", help="a new group starts at the oldest"
    )
    parser.add_argument("--group", help="consumer group (default: downstream-example-<topic>)")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the environment (DRIFTLINE_*), overridden by the command line."""
    given = {"bootstrap_servers": args.bootstrap, "topic_prefix": args.prefix}
    return Settings(**{k: v for k, v in given.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    read = 0
    with Subscriber(
        Prediction,
        settings_from(args),
        app="downstream-example",
        group_id=args.group,
        model=args.model,
        start="earliest" if args.from_beginning else "latest",
        idle_timeout=args.idle_timeout,
    ) as predictions:
        for got in predictions:
            p = got.record
            scores = ", ".join(f"{k}: {v:.2f}" for k, v in sorted(p.scores.items()))
            print(
                f"prediction {p.event_id} model={p.model} version={p.version} "
                f"-> {p.prediction!r} [{scores}] ({got.topic}[{got.partition}]@{got.offset})",
                flush=True,
            )
            read += 1
            if read == args.count:
                break
    print(f"read {read} predictions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
