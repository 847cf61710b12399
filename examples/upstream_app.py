"""An upstream application: streams feature events to Driftline, later their labels.

It makes up customers, sends each one's features for the model to score, waits (the
ground truth of a real app arrives hours or days later), then sends the label of
every event, keyed by the same event_id.

    python examples/upstream_app.py --bootstrap localhost:9092 --model churn --count 100
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from driftline.client import Producer
from driftline.settings import Settings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: settings)")
    parser.add_argument("--prefix", help="Driftline topic prefix (default: settings)")
    parser.add_argument("--model", default="churn", help="model that scores the events")
    parser.add_argument("--count", type=int, default=100, help="feature events to send")
    parser.add_argument("--label-delay", type=float, default=2.0, help="seconds before labels")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the made-up data")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the environment (DRIFTLINE_*), overridden by the command line."""
    given = {"bootstrap_servers": args.bootstrap, "topic_prefix": args.prefix}
    return Settings(**{k: v for k, v in given.items() if v is not None})


def customer(rng: random.Random) -> tuple[dict[str, bool | int | float | str | None], bool]:
    """Features of one made-up customer and whether they will churn."""
    income = round(rng.uniform(15_000, 120_000), 2)
    tenure = rng.randint(0, 72)
    complaints = rng.randint(0, 4)
    features: dict[str, bool | int | float | str | None] = {
        "age": rng.randint(18, 80),
        "income": income,
        "tenure_months": tenure,
        "complaints": complaints,
        "plan": rng.choice(["basic", "family", "pro"]),
        "is_premium": rng.random() < 0.3,
        "last_login_days": None if rng.random() < 0.1 else rng.randint(0, 60),
    }
    churns = complaints >= 3 or (tenure < 6 and income < 40_000)
    return features, churns


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rng = random.Random(args.seed)
    truth: dict[str, bool] = {}
    with Producer(settings_from(args), app="upstream-example") as producer:
        sent = []
        for _ in range(args.count):
            features, churns = customer(rng)
            region = rng.choice(["eu", "us", "apac"])
            sent.append(producer.send_features(args.model, features, segment={"region": region}))
            truth[sent[-1].event_id or ""] = churns
        for delivery in sent:
            r = delivery.wait(30)
            print(
                f"features {delivery.event_id} -> {r.topic}[{r.partition}]@{r.offset}", flush=True
            )

        time.sleep(args.label_delay)  # the ground truth becomes known later
        labels = [producer.send_label(args.model, eid, churns) for eid, churns in truth.items()]
        for delivery in labels:
            r = delivery.wait(30)
            print(
                f"label {delivery.event_id} = {truth[delivery.event_id or '']} "
                f"-> {r.topic}[{r.partition}]@{r.offset}",
                flush=True,
            )
    print(f"sent {len(sent)} feature events and {len(labels)} labels for {args.model}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
