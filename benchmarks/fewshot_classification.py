"""Benchmark of few-shot classification: accuracy, NLL and calibration, and speed.

    python benchmarks/fewshot_classification.py            # full run (see docs/benchmarks.md)
    python benchmarks/fewshot_classification.py --quick    # smoke run, under a minute
    python benchmarks/fewshot_classification.py --only speed

Accuracy and calibration: ProtoNet, Bayesian ProtoNet, Matching Networks,
MAML, first-order MAML, Reptile and Bayesian MAML, each with a Conv4 network
(``--hidden`` channels), meta-trained on 5-way 1-shot and 5-shot episodes and
scored on 600 test episodes (15 query images per class) of classes never
seen in meta-training, on two data sets that need no download:

- ``glyphs``: a generated Omniglot-like alphabet (``--glyph-classes``
  classes of 20 stroke-drawn 28x28 variants each, split 64/16/20% by class);
- ``digits``: scikit-learn's bundled 8x8 digits, meta-trained on digits 0-4
  and tested on 5-9.

Reported per learner: accuracy, NLL and Brier score (mean ± 95% CI over
episodes) and the 15-bin ECE over all query points pooled (± a bootstrap 95%
half-width over episodes), with the meta-training time.

Speed: one meta-training step on a batch of 32 5-way 1-shot glyph episodes,
vectorised, beside a Python loop over the same 32 episodes doing the same
computation (each episode's loss backpropagated in turn), for ProtoNet and
MAML, interleaved in one process.

Results are printed as markdown tables and written to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import bayesmeta as bm
from bayesmeta.learners import MetaLearner
from bayesmeta.nets import Conv4, PixelSkip
from bayesmeta.scoring.evaluation import evaluate

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import _fewshot_extra as extra  # noqa: E402

LEARNERS = (
    "ProtoNet",
    "BayesianProtoNet",
    "MatchingNet",
    "MAML",
    "FOMAML",
    "Reptile",
    "BayesianMAML",
)
METRIC_LEARNERS = {"ProtoNet", "BayesianProtoNet", "MatchingNet"}


def make(
    name: str, n_way: int, image_size: int, hidden: int, *, pixel_skip: bool = False
) -> MetaLearner:
    """A learner with its benchmark settings; the gradient learners' Conv4 has a head.

    ``pixel_skip``: the network is :class:`~bayesmeta.nets.PixelSkip` around the Conv4, whose
    embedding keeps the raw pixels beside the learned features (the head, if any, reads both).
    """
    if name in METRIC_LEARNERS:
        encoder: torch.nn.Module = Conv4(1, None, hidden=hidden, image_size=image_size)
        if pixel_skip:
            encoder = PixelSkip(encoder)
        cls = {"ProtoNet": bm.ProtoNet, "BayesianProtoNet": bm.BayesianProtoNet}.get(
            name, bm.MatchingNet
        )
        return cls(encoder, outer_lr=1e-3)
    net: torch.nn.Module = Conv4(1, n_way, hidden=hidden, image_size=image_size)
    if pixel_skip:
        shape = (1, image_size, image_size)
        body = Conv4(1, None, hidden=hidden, image_size=image_size)
        net = PixelSkip(body, out_features=n_way, input_shape=shape)
    # One inner step of 0.4 (MAML's Omniglot setting) and an outer learning rate of 3e-3: on
    # 1-shot glyphs (300 iterations) this reached 0.81 accuracy, against 0.63 with two steps
    # and 0.44 with two steps at Adam's usual 1e-3.
    gradient = {"inner_lr": 0.4, "inner_steps": 1, "outer_lr": 3e-3}
    if name == "MAML":
        return bm.MAML(net, **gradient, loss="cross_entropy")
    if name == "FOMAML":
        # Without the second-order term a single large step learns little (0.41 accuracy in
        # the same tuning runs, 0.46 in a full run); three steps of 0.1 reached 0.86.
        return bm.MAML(
            net, inner_lr=0.1, inner_steps=3, outer_lr=3e-3, first_order=True, loss="cross_entropy"
        )
    if name == "Reptile":
        return bm.Reptile(
            net, inner_lr=0.1, inner_steps=3, loss="cross_entropy", outer_lr=1e-2, train_on="all"
        )
    if name == "BayesianMAML":
        # A classification prior must be tight (sampled conv weights drown the signal
        # otherwise) and the KL tempered (5 labels cannot outweigh a prior on every weight).
        # On 1-shot glyphs (300 iterations) prior 0.003 / KL weight 3e-4 gave accuracy 0.87
        # and NLL 0.46 (MAML 0.81, 0.51); 0.01 / 1e-2 gave 0.82 and 0.61; 0.003 / 1e-2,
        # whose KL pull stops the inner step, 0.36. See docs/benchmarks.md.
        return bm.BayesianMAML(
            net,
            likelihood="categorical",
            **gradient,
            prior_scale=0.003,
            kl_weight=3e-4,
            num_particles=4,
        )
    raise ValueError(f"unknown learner {name!r}")


class _Sampled:
    """A learner whose posterior predictive is scored with ``num_samples`` weight samples."""

    def __init__(self, learner: MetaLearner, num_samples: int) -> None:
        self.learner, self.num_samples = learner, num_samples

    def adapt(self, support_x: torch.Tensor, support_y: torch.Tensor) -> Any:
        posterior = self.learner.adapt(support_x, support_y)
        samples = self.num_samples

        class _Predictor:
            def predict(self, query_x: torch.Tensor) -> Any:
                return posterior.predict(query_x, num_samples=samples)

        return _Predictor()


def _row(
    dataset: str, shots: int, name: str, scored: Any, test_batch: bm.TaskBatch, **extra: Any
) -> dict[str, Any]:
    """Score ``scored`` on the test episodes and print one line."""
    t0 = time.perf_counter()
    summary = evaluate(scored, test_batch, chunk_size=50).summary()
    row = {
        "dataset": dataset,
        "shots": shots,
        "learner": name,
        "eval_s": time.perf_counter() - t0,
        **extra,
        **{k: list(summary[k]) for k in ("accuracy", "nll", "brier", "ece")},
    }
    print(
        f"{dataset} {shots}-shot {name}: acc {summary['accuracy'][0]:.3f} "
        f"nll {summary['nll'][0]:.3f} ece {summary['ece'][0]:.3f} "
        f"({row['fit_s']:.0f} s fit, {row['eval_s']:.0f} s eval)",
        flush=True,
    )
    return row


def accuracy_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Score the baselines and meta-train and score every learner, per data set and shots."""
    rows = []
    for dataset in args.datasets:
        for shots in args.shots:
            src = extra.make_sources(dataset, shots, args.train_queries, 15, args)
            test_batch = src.test.sample(args.eval_tasks)
            for name, baseline, fit_s, info in extra.baselines(src, args):
                rows.append(
                    _row(
                        dataset,
                        shots,
                        name,
                        baseline,
                        test_batch,
                        fit_s=fit_s,
                        kind="baseline",
                        **info,
                    )
                )
            for name in args.learners:
                torch.manual_seed(args.seed)
                learner = make(name, 5, src.size, args.hidden, pixel_skip=args.pixel_skip)
                iterations = (
                    args.metric_iterations if name in METRIC_LEARNERS else args.gradient_iterations
                )
                if dataset == "glyphs2digits" and args.cross_iterations:
                    iterations = args.cross_iterations
                t0 = time.perf_counter()
                info = extra.meta_fit_early_stopped(learner, src, iterations, args)
                fit_s = time.perf_counter() - t0
                if isinstance(learner, bm.BayesianProtoNet):  # the learned tau and sigma
                    info["prior_scale"] = float(learner.prior_scale.detach())
                    info["obs_scale"] = float(learner.obs_scale.detach())
                scored: Any = (
                    _Sampled(learner, args.posterior_samples) if name == "BayesianMAML" else learner
                )
                if args.support_copies:
                    scored = bm.AugmentedSupport(
                        scored, args.support_copies, extra.jitter(args), seed=args.seed
                    )
                rows.append(
                    _row(
                        dataset,
                        shots,
                        name,
                        scored,
                        test_batch,
                        fit_s=fit_s,
                        kind="learner",
                        iterations=iterations,
                        **info,
                    )
                )
    return rows


def _interleaved_ms(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall-clock ms of each function, called in turn (after one warm-up)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(repeats + 1):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            if i:
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) * 1e3 for name, ts in times.items()}


def _looped_step(learner: MetaLearner, batch: bm.TaskBatch) -> None:
    """The same meta-step as ``learner.meta_step(batch)``, one episode at a time."""
    learner.optimizer.zero_grad(set_to_none=True)
    for t in range(len(batch)):
        (learner.meta_loss(batch.select(slice(t, t + 1))) / len(batch)).backward()
    learner.optimizer.step()


def speed_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Vectorised against looped meta-steps on 32 5-way 1-shot glyph episodes."""
    src = extra.make_sources("glyphs", 1, 15, 15, args)
    batch, size = src.train.sample(32), src.size
    rows = []
    for name in ("ProtoNet", "MAML"):
        torch.manual_seed(args.seed)
        learner = make(name, 5, size, args.hidden)
        ms = _interleaved_ms(
            {
                "vectorised": lambda learner=learner: learner.meta_step(batch),
                "loop": lambda learner=learner: _looped_step(learner, batch),
            },
            args.repeats,
        )
        rows.append(
            {
                "learner": name,
                "vectorised_ms": ms["vectorised"],
                "loop_ms": ms["loop"],
                "speedup": ms["loop"] / ms["vectorised"],
            }
        )
    return rows


def _cell(pair: list[float], digits: int = 3) -> str:
    return f"{pair[0]:.{digits}f} ± {pair[1]:.{digits}f}"


def print_tables(acc: list[dict[str, Any]], spd: list[dict[str, Any]]) -> None:
    """Markdown tables of the accuracy and speed results."""
    if acc:
        print("\n| data | shots | method | accuracy | NLL | ECE (15 bins) | Brier | fit (s) |")
        print("|---|---|---|---|---|---|---|---|")
        for r in acc:
            name = f"*{r['learner']}*" if r.get("kind") == "baseline" else r["learner"]
            print(
                f"| {r['dataset']} | {r['shots']} | {name} | {_cell(r['accuracy'])} | "
                f"{_cell(r['nll'])} | {_cell(r['ece'])} | {r['brier'][0]:.3f} | {r['fit_s']:.0f} |"
            )
    if spd:
        print("\n| learner | vectorised (ms) | per-episode loop (ms) | speed-up |")
        print("|---|---|---|---|")
        for r in spd:
            print(
                f"| {r['learner']} | {r['vectorised_ms']:.0f} | {r['loop_ms']:.0f} | "
                f"{r['speedup']:.2f}x |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings, for CI")
    parser.add_argument("--only", choices=["accuracy", "speed"], help="run one part")
    parser.add_argument(
        "--datasets", nargs="+", default=["glyphs", "digits"], choices=extra.DATASETS
    )
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--learners", nargs="*", default=list(LEARNERS), choices=LEARNERS)
    parser.add_argument("--metric-iterations", type=int, default=300)
    parser.add_argument("--gradient-iterations", type=int, default=500)
    parser.add_argument("--meta-batch", type=int, default=8, help="episodes per meta-iteration")
    parser.add_argument(
        "--train-queries", type=int, default=5, help="query images per class in meta-training"
    )
    parser.add_argument("--eval-tasks", type=int, default=600)
    parser.add_argument(
        "--posterior-samples", type=int, default=10, help="BayesianMAML's predictive samples"
    )
    parser.add_argument("--hidden", type=int, default=32, help="Conv4 channels")
    parser.add_argument("--glyph-classes", type=int, default=1000)
    parser.add_argument(
        "--glyph-distortion",
        type=float,
        default=1.5,
        help="variation between a glyph's drawings (1.0 is make_glyphs' default)",
    )
    extra.add_arguments(parser)
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats in the speed part")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results folder")
    args = parser.parse_args()
    if args.quick:
        args.metric_iterations = args.gradient_iterations = 2
        args.eval_tasks, args.repeats, args.glyph_classes, args.hidden = 10, 1, 60, 8
        args.meta_batch, args.shots = 2, [1]
        args.pretrain_steps, args.val_tasks, args.val_every, args.cross_size = 4, 10, 2, 8
        args.bll_val_tasks = 4
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    acc = accuracy_rows(args) if args.only in (None, "accuracy") else []
    spd = speed_rows(args) if args.only in (None, "speed") else []
    print_tables(acc, spd)
    total = time.perf_counter() - t0
    print(f"\ntotal {total / 60:.1f} min on {args.threads} thread(s)")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (args.out / f"fewshot_classification-{stamp}.json").write_text(
        json.dumps(
            {"args": vars(args), "accuracy": acc, "speed": spd, "total_s": total},
            indent=2,
            default=str,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
