"""Transfer a network trained on one sinusoid to shifted sinusoids seen through 5 points.

The source network is fitted to ``y = 2 sin(x)`` (2,000 noisy points). The targets are
sinusoids with larger amplitudes (2.5 to 4), shifted phases and more noise, each seen
through only 5 points. Twenty related target tasks teach the transfer prior how far each
layer may move from the source weights, and the noise level; then every new target task is
fitted by the linearised Laplace posterior under that prior. Fine-tuning the source
network on the same 5 points (with the same noise level) is the comparison. Both are
scored on 50 query points of 100 new target tasks, and the example optionally draws one
task's predictive bands.

Run:  python examples/transfer_sinusoid.py                  (under a minute on 2 CPU cores)
      python examples/transfer_sinusoid.py --out bands.png  (also draws one task)
      python examples/transfer_sinusoid.py --quick          (seconds; what CI runs)
"""

from __future__ import annotations

import argparse

import torch

from bayesmeta.nets import MLP
from bayesmeta.runs.experiment import format_table
from bayesmeta.scoring.evaluation import evaluate
from bayesmeta.tasks import Sinusoid
from bayesmeta.transfer import BayesianLastLayer, TransferLearner

TARGET = {"amplitude": (2.5, 4.0), "phase": (0.0, 0.5), "noise_std": 0.2}


def source_network(steps: int) -> MLP:
    """An MLP fitted to the source domain, ``y = 2 sin(x) + N(0, 0.1^2)``."""
    data = Sinusoid(2000, 0, amplitude=(2.0, 2.0), phase=(0.0, 0.0), noise_std=0.1, seed=0)
    task = data.sample(1)
    net = MLP((1, 40, 40, 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        (net(task.support_x[0]) - task.support_y[0]).pow(2).mean().backward()
        opt.step()
    return net


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    parser.add_argument("--out", help="write a PNG of one task's predictive bands")
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    steps, tasks = (50, 10) if args.quick else (1500, 100)

    source = source_network(steps)
    related = Sinusoid(20, 0, seed=1, **TARGET).sample(20)  # type: ignore[arg-type]
    transfer = TransferLearner(source, method="laplace", steps=steps, progress=False)
    transfer.fit_prior(related.support_x, related.support_y)
    assert transfer.prior_scale_ is not None and transfer.noise_scale_ is not None
    noise = float(transfer.noise_scale_[0])
    print("learned prior scale per tensor:", [round(float(s), 4) for s in transfer.prior_scale_])
    print(f"learned noise scale: {noise:.3f} (true 0.2)")

    learners = {
        "transfer prior (Laplace)": transfer,
        "last layer (closed form)": BayesianLastLayer.from_network(source).fit_prior(
            related.support_x, related.support_y
        ),
        "fine-tune": TransferLearner(
            source,
            method="finetune",
            prior_scale=1.0,
            noise_scale=noise,
            learn_noise=False,
            steps=200,
            progress=False,
        ),
    }
    test = Sinusoid(args.shots, 50, seed=2, **TARGET).sample(tasks)  # type: ignore[arg-type]
    rows = {name: evaluate(learner, test).summary() for name, learner in learners.items()}
    print(format_table(rows))

    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        grid = torch.linspace(-5, 5, 200).reshape(1, -1, 1)
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), sharey=True)
        for ax, (name, learner) in zip(axes, learners.items(), strict=True):
            pred = learner.adapt(test.support_x[:1], test.support_y[:1]).predict(grid)
            lo, hi = pred.interval(0.9)
            ax.fill_between(grid[0, :, 0], lo[0, :, 0], hi[0, :, 0], alpha=0.3, label="90%")
            ax.plot(grid[0, :, 0], pred.mean[0, :, 0], label="mean")
            ax.scatter(test.query_x[0, :, 0], test.query_y[0, :, 0], s=6, c="grey")
            ax.scatter(test.support_x[0, :, 0], test.support_y[0, :, 0], c="k", label="seen")
            ax.set_title(name)
        axes[0].legend(loc="lower left")
        fig.tight_layout()
        fig.savefig(args.out, dpi=120)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
