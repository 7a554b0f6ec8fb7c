"""Does epistemic uncertainty rise out of domain? Glyph-trained models on glyphs and on digits.

    python benchmarks/ood_uncertainty.py           # 40 min on 2 shared, busy CPU cores
    python benchmarks/ood_uncertainty.py --quick   # under a minute

Two Bayesian few-shot classifiers are trained on the generated glyph alphabet only
(:func:`bayesmeta.tasks.cross_domain_episodes`: 80% of the glyph classes, drawn in the
style of scikit-learn's 8x8 digits):

- **BayesianProtoNet**, meta-trained on 5-way episodes (Conv4 encoder, ``--hidden``
  channels), predicting with ``S`` draws of the class means (``predict(x, S)``);
- **BayesianLastLayer**, a Bayesian softmax head (SVI per episode) on a Conv4 encoder
  pre-trained to classify every training glyph class (Chen et al.'s *Baseline*), predicting
  with ``S`` head samples.

Each is then scored on the same number of 5-way episodes of two kinds: **held-out glyph
classes** (in domain: new classes, same domain) and **digits 5-9** (out of domain). The
predictive entropy of each query point splits into an aleatoric part (the mean entropy of
the draws' class probabilities) and an epistemic part (the mutual information between the
label and the draw; :class:`~bayesmeta.predictions.ClassPrediction`). The table gives the
mean of each over query points (± 95% CI over episodes), the accuracy, and the ratio of the
out-of-domain to the in-domain epistemic part. A model that knows what it does not know
shows a ratio above 1.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import Tensor

import bayesmeta as bm
from bayesmeta.baselines import pretrain_encoder
from bayesmeta.nets import Conv4
from bayesmeta.predictions.class_prediction import ClassPrediction
from bayesmeta.scoring.metrics import mean_ci
from bayesmeta.tasks import Episodes, cross_domain_episodes
from bayesmeta.tasks.task import TaskBatch

#: The two kinds of test episode, in table order.
DOMAINS = ("held-out glyphs", "digits 5-9")


def split_entropy(pred: ClassPrediction, query_y: Tensor) -> dict[str, tuple[float, float]]:
    """Accuracy and the entropy split, averaged per episode, then mean ± 95% CI over episodes.

    ``pred`` holds ``[S, T, Q, C]`` log-probabilities; ``query_y`` is ``[T, Q]``.
    """
    parts = {
        "accuracy": (pred.predicted == query_y).double(),
        "total": pred.entropy.double(),
        "aleatoric": pred.aleatoric_entropy.double(),
        "epistemic": pred.epistemic_entropy.double(),
    }
    return {k: mean_ci(v.mean(-1)) for k, v in parts.items()}


def protonet_scores(
    eps: dict[str, Episodes], batches: dict[str, TaskBatch], args: argparse.Namespace
) -> dict[str, dict[str, tuple[float, float]]]:
    """Meta-train a BayesianProtoNet on the glyphs; score the sampled predictive per domain."""
    torch.manual_seed(args.seed)
    encoder = Conv4(1, None, hidden=args.hidden, image_size=8, track_running_stats=True)
    learner = bm.BayesianProtoNet(encoder)
    learner.meta_fit(eps["train"], args.iterations, args.meta_batch, progress=False)
    learner.eval()
    out = {}
    for domain, batch in batches.items():
        gen = torch.Generator().manual_seed(args.seed)
        pred = learner.adapt(batch.support_x, batch.support_y).predict(
            batch.query_x, args.samples, generator=gen
        )
        out[domain] = split_entropy(pred, batch.query_y)
    return out


def last_layer_scores(
    eps: dict[str, Episodes], batches: dict[str, TaskBatch], args: argparse.Namespace
) -> dict[str, dict[str, tuple[float, float]]]:
    """Pre-train a Conv4 on every glyph class; score a Bayesian softmax head per domain."""
    torch.manual_seed(args.seed)
    train = eps["train"]
    encoder = Conv4(1, None, hidden=args.hidden, image_size=8, track_running_stats=True)
    keep = torch.isin(train.labels, train.classes)
    pretrain_encoder(
        encoder, train.x[keep], train.labels[keep], steps=args.pretrain_steps, seed=args.seed
    )
    bll = bm.BayesianLastLayer(
        encoder, num_outputs=5, classification=True, prior_scale=args.prior_scale
    )
    out = {}
    for domain, batch in batches.items():
        gen = torch.Generator().manual_seed(args.seed)
        post = bll.adapt(batch.support_x, batch.support_y, generator=gen)
        pred = post.predict(batch.query_x, num_samples=args.samples, generator=gen)
        assert isinstance(pred, ClassPrediction)
        out[domain] = split_entropy(pred, batch.query_y)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (small everything)")
    parser.add_argument("--shots", type=int, default=1, help="support images per class")
    parser.add_argument("--glyph-classes", type=int, default=1000)
    parser.add_argument("--iterations", type=int, default=500, help="BayesianProtoNet")
    parser.add_argument("--meta-batch", type=int, default=16)
    parser.add_argument("--pretrain-steps", type=int, default=1000, help="BayesianLastLayer")
    parser.add_argument("--prior-scale", type=float, default=1.0, help="BayesianLastLayer head")
    parser.add_argument("--hidden", type=int, default=32, help="Conv4 channels")
    parser.add_argument("--eval-tasks", type=int, default=200, help="episodes per domain")
    parser.add_argument("--samples", type=int, default=100, help="draws S per query point")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.glyph_classes, args.iterations, args.pretrain_steps = 100, 20, 40
        args.eval_tasks, args.samples, args.hidden = 20, 20, 8
    torch.manual_seed(args.seed)
    eps = cross_domain_episodes(5, args.shots, 15, num_classes=args.glyph_classes, seed=args.seed)
    gen = torch.Generator().manual_seed(args.seed + 1)
    batches = {
        DOMAINS[0]: eps["source_val"].sample(args.eval_tasks, generator=gen),
        DOMAINS[1]: eps["test"].sample(args.eval_tasks, generator=gen),
    }
    rows = []
    for name, score in (
        ("BayesianProtoNet", protonet_scores),
        ("BayesianLastLayer", last_layer_scores),
    ):
        t0 = time.perf_counter()
        scores = score(eps, batches, args)
        seconds = time.perf_counter() - t0
        ratio = scores[DOMAINS[1]]["epistemic"][0] / max(scores[DOMAINS[0]]["epistemic"][0], 1e-12)
        for domain in DOMAINS:
            s = scores[domain]
            rows.append(
                [
                    name,
                    domain,
                    *(f"{s[k][0]:.3f} ± {s[k][1]:.3f}" for k in ("accuracy", "total")),
                    *(f"{s[k][0]:.4f} ± {s[k][1]:.4f}" for k in ("aleatoric", "epistemic")),
                    f"{ratio:.2f}" if domain == DOMAINS[1] else "",
                    f"{seconds:.0f}" if domain == DOMAINS[0] else "",
                ]
            )
    header = [
        "learner",
        "episodes",
        "accuracy",
        "entropy",
        "aleatoric",
        "epistemic",
        "epi. ratio",
        "s",
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(
        f"5-way {args.shots}-shot, {args.eval_tasks} episodes per domain, S = {args.samples}, "
        f"trained on {args.glyph_classes} glyph classes (80% used), seed {args.seed}"
    )
    for r in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
