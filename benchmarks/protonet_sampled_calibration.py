"""BayesianProtoNet: calibration of the sampled predictive beside the closed form.

    python benchmarks/protonet_sampled_calibration.py           # ~2-3 min on 2 CPU cores
    python benchmarks/protonet_sampled_calibration.py --quick   # seconds

Meta-trains a BayesianProtoNet (Conv4 encoder, ``--hidden`` channels) on 5-way episodes
of the generated glyph alphabet (64% of the classes), then scores ``--eval-tasks`` test
episodes of held-out classes three ways: the closed-form predictive
(``predict(query_x)``), the sampled predictive (``predict(query_x, S)``, draws given the
support set and the query point, whose average is the closed form), and the draws from
the support posterior alone (``query_update=False``, what the sampled predictive was
before; Pyro's ``Predictive`` with the learner's guide samples these). Prints accuracy,
NLL and the 15-bin ECE (mean ± 95% CI over episodes; ECE pooled over query points).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

import bayesmeta as bm
from bayesmeta.nets import Conv4
from bayesmeta.predictions.class_prediction import ClassPrediction
from bayesmeta.scoring.evaluation import evaluate
from bayesmeta.tasks import Episodes, make_glyphs, split_classes


class Scored:
    """``adapt``/``predict`` with one of the three predictives (see the module docstring)."""

    def __init__(self, learner: bm.BayesianProtoNet, mode: str, samples: int) -> None:
        self.learner, self.mode, self.samples = learner, mode, samples
        self.generator = torch.Generator().manual_seed(0)

    def adapt(self, support_x: torch.Tensor, support_y: torch.Tensor) -> Any:
        self.post = self.learner.adapt(support_x, support_y)
        return self

    def predict(self, query_x: torch.Tensor) -> ClassPrediction:
        if self.mode == "closed form":
            return self.post.predict(query_x)
        if self.mode == "sampled":
            return self.post.predict(query_x, self.samples, generator=self.generator)
        return self.post.predict(
            query_x, self.samples, generator=self.generator, query_update=False
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 iterations, 40 episodes")
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--eval-tasks", type=int, default=300)
    parser.add_argument("--samples", type=int, default=100, help="draws S per query point")
    parser.add_argument("--hidden", type=int, default=32, help="Conv4 channels (embedding)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    iterations = 30 if args.quick else args.iterations
    eval_tasks = 40 if args.quick else args.eval_tasks
    torch.set_num_threads(1)
    x, labels = make_glyphs(400, 20, 28, seed=args.seed)
    train_cls, _, test_cls = split_classes(labels, (0.64, 0.16, 0.2), seed=args.seed)
    print("| shots | predictive | accuracy | NLL | ECE |")
    print("|---:|---|---:|---:|---:|")
    for shots in args.shots:
        train = Episodes(x, labels, 5, shots, 15, classes=train_cls, seed=args.seed)
        test = Episodes(x, labels, 5, shots, 15, classes=test_cls, seed=args.seed + 1)
        torch.manual_seed(args.seed)
        learner = bm.BayesianProtoNet(Conv4(1, None, hidden=args.hidden, image_size=28))
        t0 = time.perf_counter()
        learner.meta_fit(train, iterations, 16, progress=False)
        batch = test.sample(eval_tasks)
        for mode in ("closed form", "sampled", "support posterior only"):
            s = evaluate(Scored(learner, mode, args.samples), batch, progress=False).summary()
            cells = " | ".join(f"{s[m][0]:.3f} ± {s[m][1]:.3f}" for m in ("accuracy", "nll", "ece"))
            print(f"| {shots} | {mode} | {cells} |", flush=True)
        print(f"<!-- {shots}-shot: {time.perf_counter() - t0:.0f} s -->")


if __name__ == "__main__":
    main()
