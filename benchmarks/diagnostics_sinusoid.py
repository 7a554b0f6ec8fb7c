"""How good are the variational task posteriors? PSIS k-hat and a NUTS reference, sinusoids.

    python benchmarks/diagnostics_sinusoid.py            # default run (see docs/benchmarks.md)
    python benchmarks/diagnostics_sinusoid.py --quick    # smoke run, seconds

Sinusoid tasks (Finn et al.: amplitude U[0.1, 5], phase U[0, pi], x U[-5, 5]) with
Gaussian noise 0.1, 10 support points. BayesianMAML and VariationalMetaLearner are
meta-trained on them, then adapt to 100 held-out tasks:

* **k-hat** (``bayesmeta.diagnostics.vi_quality``): for each task, 1,000 draws
  from ``q`` importance-weighted by the exact unnormalised posterior under the
  learner's own prior and likelihood; the table gives the median k-hat and the
  fractions read good (< 0.5), usable (0.5-0.7) and unreliable (> 0.7).
  Networks: 1-40-40-1 ReLU (1,761 weights), the benchmark network, and
  1-16-1 tanh (49 weights).
* **NUTS gap** (``bayesmeta.diagnostics.reference``): on the small network,
  Pyro's NUTS samples each of 4 test tasks' exact posterior under the same
  prior (2 chains of 300 draws after 300 warm-up steps); the learners'
  predictives at 100 query points are compared with NUTS's: the mean gap in
  units of NUTS's predictive standard deviation, the ratio of 90% interval
  widths, and the NLL of the query targets.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

import bayesmeta as bm
from bayesmeta.diagnostics import compare_predictives, reference_posterior, vi_quality
from bayesmeta.learners import MetaLearner
from bayesmeta.nets import MLP
from bayesmeta.tasks import Sinusoid, TaskBatch

HERE = Path(__file__).resolve().parent
SHOTS, NOISE = 10, 0.1


def learners(net: Any, iterations: int, train: TaskBatch, seed: int) -> dict[str, MetaLearner]:
    """BayesianMAML and VariationalMetaLearner, meta-trained."""
    torch.manual_seed(seed)
    bmaml = bm.BayesianMAML(net() if callable(net) else net, inner_lr=0.01, inner_steps=10)
    bmaml.meta_fit(Sinusoid(SHOTS, 10, noise_std=NOISE, seed=seed), iterations, 25, progress=False)
    torch.manual_seed(seed)
    vml = bm.VariationalMetaLearner(net() if callable(net) else net, adapt_steps=300)
    vml.meta_fit(train, iterations, 25, progress=False)
    return {"BayesianMAML": bmaml, "VariationalMetaLearner": vml}


def khat_rows(fitted: dict[str, MetaLearner], test: TaskBatch, draws: int) -> dict[str, Any]:
    rows = {}
    for name, learner in fitted.items():
        post = learner.adapt(test.support_x, test.support_y)
        q = vi_quality(
            learner,
            post,
            test.support_x,
            test.support_y,
            num_samples=draws,
            generator=torch.Generator().manual_seed(0),
        )
        finite = q.khat[torch.isfinite(q.khat)]
        rows[name] = {
            "median_khat": float(finite.median()) if finite.numel() else float("nan"),
            **q.fractions(),
            "relative_ess": float(q.relative_ess.mean()),
        }
    return rows


def nuts_rows(
    fitted: dict[str, MetaLearner], test: TaskBatch, samples: int, warmup: int
) -> dict[str, Any]:
    gaps: dict[str, list[dict[str, float]]] = {name: [] for name in fitted}
    diag: list[dict[str, float]] = []
    seconds = 0.0
    for t in range(len(test)):
        sx, sy, qx, qy = test.support_x[t], test.support_y[t], test.query_x[t], test.query_y[t]
        for name, learner in fitted.items():
            start = time.perf_counter()
            ref = reference_posterior(
                learner, sx, sy, num_samples=samples, warmup_steps=warmup, num_chains=2, seed=t
            )
            seconds += time.perf_counter() - start
            diag.append(ref.summary())
            ref_pred = ref.predict(qx, num_samples=400, generator=torch.Generator().manual_seed(t))
            approx = learner.adapt(sx, sy).predict(qx)
            gaps[name].append(compare_predictives(approx, ref_pred, qy))
    out: dict[str, Any] = {}
    for name, values in gaps.items():
        out[name] = {k: sum(v[k] for v in values) / len(values) for k in values[0]}
    out["nuts"] = {
        "max_rhat": max(d["max_rhat"] for d in diag),
        "min_ess_bulk": min(d["min_ess_bulk"] for d in diag),
        "divergences": sum(d["divergences"] for d in diag),
        "seconds_per_task": seconds / len(diag),
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    quick = args.quick
    iterations = 20 if quick else 5000
    tasks, draws = (4, 200) if quick else (100, 1000)
    nuts_tasks, samples, warmup = (1, 30, 30) if quick else (4, 300, 300)
    train = Sinusoid(SHOTS, 10, noise_std=NOISE, seed=args.seed + 1).sample(20 if quick else 500)
    test = Sinusoid(SHOTS, 100, noise_std=NOISE, seed=args.seed + 2).sample(tasks)
    results: dict[str, Any] = {}
    nets = {"1-40-40-1 relu": (1, 40, 40, 1), "1-16-1 tanh": lambda: MLP((1, 16, 1), "tanh")}
    for label, net in nets.items():
        start = time.perf_counter()
        fitted = learners(net, iterations, train, args.seed)
        print(f"\n{label}: meta-trained in {time.perf_counter() - start:.0f} s", flush=True)
        rows = khat_rows(fitted, test, draws)
        results[label] = {"khat": rows}
        print("| learner | median k-hat | good | usable | unreliable | relative ESS |")
        print("|---|---|---|---|---|---|")
        for name, r in rows.items():
            print(
                f"| {name} | {r['median_khat']:.2f} | {r['good']:.2f} | {r['usable']:.2f} | "
                f"{r['unreliable']:.2f} | {r['relative_ess']:.3f} |",
                flush=True,
            )
        if label.startswith("1-16-1"):
            gap = nuts_rows(fitted, test.select(slice(0, nuts_tasks)), samples, warmup)
            results[label]["nuts"] = gap
            print("\n| learner vs NUTS | mean gap / NUTS sd | width ratio | NLL | NUTS NLL |")
            print("|---|---|---|---|---|")
            for name in fitted:
                g = gap[name]
                print(
                    f"| {name} | {g['mean_gap']:.3f} | {g['width_ratio']:.3f} | "
                    f"{g['nll_approx']:.3f} | {g['nll_reference']:.3f} |"
                )
            print(f"NUTS: {gap['nuts']}")
    if not quick:
        out = HERE / "results" / f"diagnostics_sinusoid-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps({"args": vars(args), "results": results}, indent=1))
        print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
