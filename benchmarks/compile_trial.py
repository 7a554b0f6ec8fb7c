"""Does ``torch.compile`` pay for bayesmeta's meta-iteration on the CPU? (issue 18, item 2)

    python benchmarks/compile_trial.py                # cold: a fresh compilation cache
    python benchmarks/compile_trial.py --warm-cache   # torch's own cache, as a second run sees

The setting of ``benchmarks/floor_jax.py`` (sinusoids, T=25 tasks, K=10 support and
10 query points, 5 inner SGD steps of 0.01, a 1-40-40-1 ReLU MLP), one thread. Two pieces
of bayesmeta's own code, each run eagerly and through ``torch.compile`` (inductor, default
mode, the same Python function):

- the first-order inner loop, ``gradient_steps(..., differentiable=False)``: five
  forward and hand-written backward passes and updates, no autograd graph (FOMAML's and
  Reptile's inner loop, and test-time adaptation);
- second-order MAML's meta-gradient: the differentiable inner loop and the query loss,
  compiled, then ``torch.autograd.grad`` through the compiled graph.

Each compiled result is first checked equal to the eager one (float32 rounding). The table
gives eager and compiled microseconds per call (medians of interleaved rounds), the
compilation time of the first call, and the iterations after which the compilation is paid
back (compile time over time saved per call). By default the compilation is cold (inductor
writes to a fresh temporary cache, as a user's first run does); ``--warm-cache`` keeps torch's
own on-disk cache, as every later run of the same program sees.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

import bayesmeta as bm
from bayesmeta.inference.inner_loop import gradient_steps

NET = (1, 40, 40, 1)
TASKS, SHOTS, QUERY = 25, 10, 10
INNER_LR, INNER_STEPS = 0.01, 5


def pieces() -> dict[str, Callable[[], Sequence[Tensor]]]:
    """The two timed functions, eager, by name (each returns its tensors)."""
    torch.manual_seed(0)
    learner = bm.MAML(NET, inner_lr=INNER_LR, inner_steps=INNER_STEPS)
    batch = bm.Sinusoid(SHOTS, QUERY, seed=0).sample(TASKS)
    fnet, loss = learner.fnet, learner.loss_fn
    params = list(fnet.params())
    x, y = batch.support_x, batch.support_y
    frozen = [p.detach() for p in fnet.expand(params, x.shape[:1])]

    def first_order(*start: Tensor) -> tuple[Tensor, ...]:
        return gradient_steps(
            fnet, start, x, y, loss, steps=INNER_STEPS, lr=INNER_LR, differentiable=False
        )

    def meta_loss(*weights: Tensor) -> Tensor:
        start = fnet.expand(weights, x.shape[:1])
        adapted = gradient_steps(fnet, start, x, y, loss, steps=INNER_STEPS, lr=INNER_LR)
        return loss(fnet(adapted, batch.query_x), batch.query_y).mean()

    compiled_inner = torch.compile(first_order)
    compiled_loss = torch.compile(meta_loss)
    return {
        "first-order inner loop (eager)": lambda: first_order(*frozen),
        "first-order inner loop (compiled)": lambda: compiled_inner(*frozen),
        "second-order meta-gradient (eager)": lambda: torch.autograd.grad(
            meta_loss(*params), params
        ),
        "second-order meta-gradient (compiled)": lambda: torch.autograd.grad(
            compiled_loss(*params), params
        ),
    }


def per_call_us(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument(
        "--warm-cache", action="store_true", help="keep torch's on-disk compilation cache"
    )
    args = parser.parse_args(argv)
    if args.warm_cache:
        return trial(args)
    with tempfile.TemporaryDirectory(prefix="bm-compile-trial-") as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        return trial(args)


def trial(args: argparse.Namespace) -> int:
    """Check, time and print; 1 if a compiled result differs from the eager one."""
    torch.set_num_threads(1)
    fns = pieces()
    compile_s: dict[str, float] = {}
    for name, fn in fns.items():
        start = time.perf_counter()
        fn()
        compile_s[name] = time.perf_counter() - start
    names = list(fns)
    for eager, compiled in zip(names[0::2], names[1::2], strict=True):
        a, b = fns[eager](), fns[compiled]()
        diff = max(float((u - v).abs().max()) for u, v in zip(a, b, strict=True))
        scale = max(float(u.abs().max()) for u in a)
        if diff > 1e-6 + 1e-4 * scale:
            print(f"{compiled}: differs from eager by {diff:.3g}")
            return 1
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            times[name].append(per_call_us(fns[name], args.iters))
    cache = "warm (torch's own)" if args.warm_cache else "cold (a fresh one)"
    print(
        f"torch {torch.__version__}, 1 thread, compilation cache {cache}; us per call, "
        f"median of {args.rounds} interleaved rounds of {args.iters}\n",
        file=sys.stdout,
    )
    print("| piece | eager us | compiled us | compiled / eager | compile s | pays back after |")
    print("|---|---:|---:|---:|---:|---:|")
    for eager, compiled in zip(names[0::2], names[1::2], strict=True):
        e, c = statistics.median(times[eager]), statistics.median(times[compiled])
        piece = eager.removesuffix(" (eager)")
        cost = compile_s[compiled] - compile_s[eager]
        back = f"{cost / ((e - c) * 1e-6):,.0f} calls" if e > c else "never"
        print(f"| {piece} | {e:.0f} | {c:.0f} | {c / e:.2f} | {cost:.1f} | {back} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
