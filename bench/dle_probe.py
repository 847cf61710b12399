# mypy: disable-error-code="no-untyped-call"
"""Would direct loss estimation (DLE) for regressors be sound with what Driftline has?

    .venv/bin/python -m bench.dle_probe

A regressor (Driftline's only regression factory: encoded features | river
``LinearRegression``) learns 5,000 events of ``y = 2 x0 + N(0, 0.2 + |x1|)`` (the error
grows with |x1|, as real errors grow in some regions of the inputs). A loss model learns
the absolute residual on 1,000 held-out events (what DLE trains at training time), from
the features and the prediction, in two kinds: the same linear factory, and river's
``HoeffdingTreeRegressor`` (not a Driftline factory). Then x1's spread moves (0.3 to 3)
and each loss model's mean prediction over 2,000 events (the DLE estimate of MAE) is
compared with the realized MAE. Seed 1, fixed.
"""

from __future__ import annotations

import random
import statistics
from typing import Any

from river import linear_model, preprocessing, tree


def main() -> None:
    rng = random.Random(1)

    def draw(spread: float) -> tuple[dict[str, float], float]:
        x0, x1 = rng.gauss(0, 1), rng.gauss(0, spread)
        return {"x0": x0, "x1": x1}, 2 * x0 + rng.gauss(0, 0.2 + abs(x1))

    model: Any = preprocessing.StandardScaler() | linear_model.LinearRegression()
    for _ in range(5_000):
        x, y = draw(1.0)
        model.learn_one(x, y)
    lin: Any = preprocessing.StandardScaler() | linear_model.LinearRegression()
    ht: Any = tree.HoeffdingTreeRegressor()
    for _ in range(1_000):
        x, y = draw(1.0)
        yhat = model.predict_one(x)
        lin.learn_one({**x, "yhat": yhat}, abs(y - yhat))
        ht.learn_one({**x, "yhat": yhat}, abs(y - yhat))
    print(f"{'x1 spread':>9} {'realized MAE':>12} {'DLE linear':>10} {'DLE tree':>8}")
    for spread in (0.3, 1.0, 2.0, 3.0):
        rows = [draw(spread) for _ in range(2_000)]
        f = [({**x, "yhat": model.predict_one(x)}, y) for x, y in rows]
        real = statistics.fmean(abs(y - x["yhat"]) for x, y in f)
        est_lin = statistics.fmean(lin.predict_one(x) for x, _ in f)
        est_ht = statistics.fmean(ht.predict_one(x) for x, _ in f)
        print(f"{spread:>9} {real:>12.3f} {est_lin:>10.3f} {est_ht:>8.3f}")
    print(f"tree leaves after 1,000 held-out rows: {ht.n_leaves}")


if __name__ == "__main__":
    main()
