"""Score few-shot settings on the validation digits only (0-4), never on the test digits.

    python benchmarks/fewshot_validation.py --learners ProtoNet FOMAML --iters 1500 \
        --val-every 250 --copies 0 4 8 --tag jitter --train-jitter --threads 1

Issue 19: every choice for the glyphs-to-digits benchmark (``--train-jitter``,
``--pixel-skip``, support copies, iterations) is made here. Each learner is meta-trained on
glyphs2digits exactly as ``fewshot_classification.py`` does (the same ``make``, the same early
stopping on 200 validation episodes), then scored on 600 further validation episodes (drawn
with their own seed, 12345), adapting to each support set alone and with ``--copies``
jittered copies of it (``bayesmeta.AugmentedSupport``). ``--nn`` scores raw-pixel 1-NN
likewise. Prints one line per score and writes ``benchmarks/results/fewshot_validation-*.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import _fewshot_extra as extra  # noqa: E402
import fewshot_classification as fc  # noqa: E402

import bayesmeta as bm  # noqa: E402
from bayesmeta.baselines import NearestNeighbour  # noqa: E402
from bayesmeta.scoring.evaluation import evaluate  # noqa: E402

#: Seed of the 600 scoring episodes, apart from the early-stopping ones (seeded by --seed).
SCORE_SEED = 12345


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--learners", nargs="*", default=["ProtoNet"], choices=fc.LEARNERS)
    p.add_argument("--iters", type=int, default=500, help="meta-iterations")
    p.add_argument("--copies", type=int, nargs="+", default=[0], help="support copies scored")
    p.add_argument("--nn", action="store_true", help="also score raw-pixel 1-NN")
    p.add_argument("--tag", default="run", help="name in the output lines and file")
    p.add_argument("--out", type=Path, default=HERE / "results")
    extra.add_study_arguments(p)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    src = extra.make_sources("glyphs2digits", 1, args.train_queries, 15, args)
    scored = src.val.sample(args.score_tasks, generator=torch.Generator().manual_seed(SCORE_SEED))
    rows: list[dict[str, Any]] = []

    def score(name: str, learner: Any, copies: int) -> None:
        wrapped = learner
        if copies:
            wrapped = bm.AugmentedSupport(learner, copies, extra.jitter(args), seed=args.seed)
        s = evaluate(wrapped, scored, chunk_size=50).summary()
        rows.append(
            {"learner": name, "copies": copies, **{k: s[k] for k in ("accuracy", "nll", "ece")}}
        )
        print(
            f"{args.tag} {name} copies {copies}: val acc {s['accuracy'][0]:.3f} "
            f"nll {s['nll'][0]:.3f} ece {s['ece'][0]:.3f}",
            flush=True,
        )

    if args.nn:
        nn = NearestNeighbour()
        nn.fit_temperature(src.val, args.val_tasks, seed=args.seed)
        for c in args.copies:
            score("1-NN", nn, c)
    for name in args.learners:
        torch.manual_seed(args.seed)
        learner = fc.make(name, 5, src.size, args.hidden, pixel_skip=args.pixel_skip)
        t0 = time.perf_counter()
        info = extra.meta_fit_early_stopped(learner, src, args.iters, args)
        print(f"{args.tag} {name}: fit {time.perf_counter() - t0:.0f} s, {info}", flush=True)
        rows.append({"learner": name, "fit": info})
        for c in args.copies:
            score(name, learner, c)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = args.out / f"fewshot_validation-{args.tag}-{stamp}.json"
    path.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
