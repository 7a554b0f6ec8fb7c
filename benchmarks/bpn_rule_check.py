"""Diagnostic: is Bayesian ProtoNet's accuracy lost in its prediction rule or its embedding?

    python benchmarks/bpn_rule_check.py --train-jitter --val-every 250 --iters 1500

Meta-trains one Bayesian ProtoNet on glyphs2digits as ``fewshot_classification.py`` does
(early stopping on digits 0-4), then scores its own encoder twice on the same episodes: with
its posterior predictive, and with ProtoNet's nearest-prototype rule (``bm.ProtoNet`` around
the same encoder). It prints the learned ``tau``, ``sigma`` and the shrinkage
``w = tau^2 / (tau^2 + sigma^2)``. No setting is chosen from it (issue 19).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import _fewshot_extra as extra  # noqa: E402
import fewshot_classification as fc  # noqa: E402

import bayesmeta as bm  # noqa: E402
from bayesmeta.scoring.evaluation import evaluate  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=1500)
    extra.add_study_arguments(p)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    src = extra.make_sources("glyphs2digits", 1, args.train_queries, 15, args)
    test = src.test.sample(args.score_tasks)  # the benchmark's test episodes
    torch.manual_seed(args.seed)
    bpn = fc.make("BayesianProtoNet", 5, src.size, args.hidden, pixel_skip=args.pixel_skip)
    info = extra.meta_fit_early_stopped(bpn, src, args.iters, args)
    tau, sigma = float(bpn.prior_scale.detach()), float(bpn.obs_scale.detach())
    w = tau**2 / (tau**2 + sigma**2)
    print(f"best step {info.get('best_step')}: tau {tau:.3f} sigma {sigma:.3f} w {w:.3f}")
    val = src.val.sample(args.score_tasks, generator=torch.Generator().manual_seed(12345))
    for name, batch in (("val (digits 0-4)", val), ("test (digits 5-9)", test)):
        own = evaluate(bpn, batch, chunk_size=50).summary()["accuracy"][0]
        rule = evaluate(bm.ProtoNet(bpn.encoder), batch, chunk_size=50).summary()["accuracy"][0]
        print(f"{name}: Bayesian ProtoNet {own:.3f}, ProtoNet's rule on its embedding {rule:.3f}")


if __name__ == "__main__":
    main()
