"""Transfer from a source sinusoid to shifted target sinusoids, with 1 to 20 target points.

    python benchmarks/transfer_regression.py            # default run (see docs/benchmarks.md)
    python benchmarks/transfer_regression.py --quick    # smoke run, seconds

Source domain: one function, ``y = 2 sin(x) + N(0, 0.1^2)``, 2,000 points on
``x ~ U[-5, 5]``; a 1-40-40-1 ReLU MLP is trained on it (Adam, full batch).
Target domain: shifted sinusoids ``y = A sin(x - phi) + N(0, 0.2^2)`` with
``A ~ U[2.5, 4]`` (outside the source amplitude) and ``phi ~ U[0, 0.5]``, more
noise than the source. Every method sees the same 200 held-out target tasks,
with ``K`` = 1, 5, 10, 20 support points and 50 query points each; where a
method learns its prior (and noise) scales from related target tasks, it gets
the same 20 related tasks of 20 points.

Methods (``bayesmeta.transfer``):

* scratch (Laplace): a network trained on the target data alone, prior
  ``N(0, sigma^2)``, the linearised Laplace posterior; ``sigma = 1`` with the
  related tasks' noise scale, or scales and noise learned from the related
  tasks (4 rounds of MacKay's loop, started at 1);
* fine-tune: the source network fine-tuned on the target points (200 Adam steps);
* L2-SP: MAP under the transfer prior with scale 0.1;
* transfer prior, SVI (fixed 0.1 / empirical Bayes per task / learned from the
  related tasks);
* transfer prior, Laplace (empirical Bayes per task / learned from the related
  tasks);
* Bayesian last layer on the source network's features (empirical Bayes per
  task / learned from the related tasks).

The point-estimate methods (fine-tune, L2-SP), scratch (1.0) and transfer
Laplace (EB) are given the noise scale that
the related tasks give (the Laplace fit's), so that their NLL measures the
missing epistemic uncertainty and not a collapsed noise fit. Metrics: query
MSE, predictive NLL per point and 90% interval coverage, mean ± 95% CI over
the target tasks; adaptation time for all 200 tasks at once.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bayesmeta.nets import MLP
from bayesmeta.scoring.evaluation import evaluate
from bayesmeta.tasks import Sinusoid, TaskBatch
from bayesmeta.transfer import BayesianLastLayer, TransferLearner

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _source_fit import fit_full_batch  # noqa: E402

SOURCE = {"amplitude": (2.0, 2.0), "phase": (0.0, 0.0), "noise_std": 0.1}
TARGET = {"amplitude": (2.5, 4.0), "phase": (0.0, 0.5), "noise_std": 0.2}


def train_source(points: int, steps: int, seed: int) -> MLP:
    """The source network, fitted to one noisy sinusoid by full-batch Adam."""
    torch.manual_seed(seed)
    data = Sinusoid(points, 0, seed=seed, **SOURCE).sample(1)  # type: ignore[arg-type]
    x, y = data.support_x[0], data.support_y[0]
    net = MLP((1, 40, 40, 1))
    fit_full_batch(net, x, y, steps)
    return net


def methods(source: MLP, related: TaskBatch, steps: int) -> dict[str, Callable[[], Any]]:
    """Name -> a factory of the fitted learner (prior fits happen inside)."""
    rx, ry = related.support_x, related.support_y
    laplace_meta = TransferLearner(source, method="laplace", steps=steps, progress=False)
    laplace_meta.fit_prior(rx, ry)
    assert laplace_meta.noise_scale_ is not None
    noise = float(laplace_meta.noise_scale_[0])
    fixed_noise = {"noise_scale": noise, "learn_noise": False, "progress": False}
    scratch = TransferLearner.from_scratch(
        MLP((1, 40, 40, 1)),
        method="laplace",
        prior_scale="empirical",
        steps=steps,
        progress=False,
    )
    return {
        "scratch (Laplace, 1.0)": lambda: TransferLearner.from_scratch(
            MLP((1, 40, 40, 1)), method="laplace", prior_scale=1.0, steps=steps, **fixed_noise
        ),
        "scratch (Laplace, learned)": lambda: scratch.fit_prior(rx, ry),
        "fine-tune": lambda: TransferLearner(
            source, method="finetune", prior_scale=1.0, steps=200, **fixed_noise
        ),
        "L2-SP (0.1)": lambda: TransferLearner(
            source, method="map", prior_scale=0.1, steps=steps, **fixed_noise
        ),
        "transfer SVI (0.1)": lambda: TransferLearner(
            source, prior_scale=0.1, steps=steps, progress=False
        ),
        "transfer SVI (EB)": lambda: TransferLearner(source, steps=steps, progress=False),
        "transfer SVI (learned)": lambda: TransferLearner(
            source, steps=steps, progress=False
        ).fit_prior(rx, ry),
        "transfer Laplace (EB)": lambda: TransferLearner(
            source, method="laplace", steps=steps, **fixed_noise
        ),
        "transfer Laplace (learned)": lambda: laplace_meta,
        "last layer (EB)": lambda: BayesianLastLayer.from_network(source, num_outputs=1),
        "last layer (learned)": lambda: BayesianLastLayer.from_network(
            source, num_outputs=1
        ).fit_prior(rx, ry),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5, 10, 20])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--methods", nargs="+", help="only the methods whose names contain these")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    quick = args.quick
    tasks, steps = (8, 30) if quick else (200, 1000)
    source = train_source(200 if quick else 2000, 50 if quick else 2000, args.seed)
    related = Sinusoid(20, 0, seed=args.seed + 1, **TARGET).sample(4 if quick else 20)  # type: ignore[arg-type]
    table = methods(source, related, steps)
    if args.methods:
        table = {n: m for n, m in table.items() if any(s in n for s in args.methods)}
    results: dict[str, dict[str, Any]] = {}
    print("| method | K | MSE | NLL | 90% coverage | adapt s |")
    print("|---|---|---|---|---|---|")
    for k in args.shots:
        test = Sinusoid(k, 50, seed=args.seed + 100 + k, **TARGET).sample(tasks)  # type: ignore[arg-type]
        for name, make in table.items():
            learner = make()
            start = time.perf_counter()
            ev = evaluate(learner, test, chunk_size=tasks)
            seconds = time.perf_counter() - start
            s = ev.summary()
            results.setdefault(name, {})[str(k)] = {**ev.to_dict(), "seconds": seconds}
            print(
                f"| {name} | {k} | {s['mse'][0]:.3f} ± {s['mse'][1]:.3f} | "
                f"{s['nll'][0]:.3f} ± {s['nll'][1]:.3f} | {s['coverage_90'][0]:.3f} | "
                f"{seconds:.1f} |",
                flush=True,
            )
    out = HERE / "results" / f"transfer_regression-{time.strftime('%Y%m%d-%H%M%S')}.json"
    if not quick:
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps({"args": vars(args), "results": results}, indent=1))
        print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
