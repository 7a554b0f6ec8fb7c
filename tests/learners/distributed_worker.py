"""Run by tests/learners/test_distributed.py under torchrun: meta-train, write the results.

    torchrun --standalone --nproc_per_node=2 distributed_worker.py LEARNER OUT_DIR [MODE]

MODE "same" (default) seeds the task source alike on every rank; "mismatch" seeds it by
rank (which must be refused). Each rank writes rank<r>.json: its final flat parameters
and the loss history, or the error it raised.
"""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

import bayesmeta as bm
from bayesmeta.learners.distributed import init_from_env


def build(name: str, seed: int):
    torch.manual_seed(seed)
    if name == "maml":
        return bm.MAML((1, 16, 1), inner_steps=2, max_grad_norm=5.0)
    if name == "reptile":
        return bm.Reptile((1, 16, 1), inner_steps=2)
    if name == "reptile_sgd":
        return bm.Reptile(
            (1, 16, 1), inner_steps=2, optimizer=lambda ps: torch.optim.SGD(ps, lr=0.1)
        )
    if name == "variational":
        return bm.VariationalMetaLearner((1, 16, 1))
    if name == "bayesian_maml":
        return bm.BayesianMAML((1, 16, 1), inner_steps=2)
    raise ValueError(name)


def main() -> None:
    name, out = sys.argv[1], Path(sys.argv[2])
    mode = sys.argv[3] if len(sys.argv) > 3 else "same"
    torch.set_num_threads(1)
    assert init_from_env("gloo")
    rank = dist.get_rank()
    # a different initialisation on each rank: meta_fit must broadcast rank 0's
    learner = build(name, seed=rank)
    seed = 3 if mode == "same" else 3 + rank
    result: dict = {}
    try:
        source = bm.Sinusoid(5, 5, seed=seed)
        tasks = source.sample(10) if name == "variational" else source
        history = learner.meta_fit(tasks, iterations=6, meta_batch_size=5, progress=False)
        params = torch.cat([p.detach().reshape(-1) for p in learner.parameters()])
        result = {"params": params.tolist(), "loss": history.loss}
    except bm.BayesmetaError as err:
        result = {"error": type(err).__name__, "message": str(err)}
    (out / f"rank{rank}.json").write_text(json.dumps(result))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
