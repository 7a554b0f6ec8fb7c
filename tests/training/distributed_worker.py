"""Run by tests/learners/test_distributed.py under torchrun: meta-train, write the results.

    torchrun --standalone --nproc_per_node=2 distributed_worker.py LEARNER OUT_DIR [MODE]

MODE "same" (default) seeds the task source alike on every rank; "mismatch" seeds it by
rank (which must be refused). Each rank writes rank<r>.json: its final flat parameters
and the loss history, or the error it raised.
"""

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

import bayesmeta as bm
from bayesmeta.training.distributed import init_from_env


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
    if name.startswith("variational"):
        return bm.VariationalMetaLearner((1, 16, 1))
    if name == "bayesian_maml":
        return bm.BayesianMAML((1, 16, 1), inner_steps=2)
    raise ValueError(name)


def fit(learner, name: str, seed: int):
    """Meta-train for 6 iterations of 5 tasks; the variational learner on 10 fixed tasks."""
    source = bm.Sinusoid(5, 5, seed=seed)
    if name != "variational":
        return learner.meta_fit(source, iterations=6, meta_batch_size=5, progress=False)
    return learner.meta_fit(source.sample(10), iterations=6, meta_batch_size=5, progress=False)


def variational_gradient(learner, seed: int, step) -> list[float]:
    """One step's gradient of every parameter, dense and flat, with tiny guide scales.

    Tiny scales make the ELBO deterministic given the subsample (Monte Carlo draws differ
    between a split over ranks and one process); ``step(tasks, generator)`` computes it.
    """
    tasks = bm.Sinusoid(5, 5, seed=seed).sample(10)
    learner.meta_loss(tasks)  # creates q(theta_t)
    with torch.no_grad():
        for p in (learner.task_log_scale, learner.hyper_loc_log_std):
            p.fill_(-12.0)
        if learner.hyper_log_scale_log_std is not None:
            learner.hyper_log_scale_log_std.fill_(-12.0)
    learner.zero_grad(set_to_none=True)
    step(tasks, torch.Generator().manual_seed(7))
    grads = [
        torch.zeros_like(p) if p.grad is None else p.grad.to_dense() for p in learner.parameters()
    ]
    return torch.cat([g.reshape(-1) for g in grads]).tolist()


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
        if name == "variational_gradient":
            learner.load_state_dict(build(name, seed=0).state_dict())  # the same start
            grad = variational_gradient(
                learner, seed, lambda tasks, g: learner._distributed_gradients(tasks, 5, g)
            )
            result = {"grad": grad}
        else:
            history = fit(learner, name, seed)
            params = torch.cat([p.detach().reshape(-1) for p in learner.parameters()])
            result = {"params": params.tolist(), "loss": history.loss}
    except bm.BayesmetaError as err:
        result = {"error": type(err).__name__, "message": str(err)}
    (out / f"rank{rank}.json").write_text(json.dumps(result))
    dist.barrier()
    dist.destroy_process_group()
    # Skip interpreter teardown: gloo's worker threads can still hold tensors then, and
    # about 1 exit in 20 aborts ("terminate called without an active exception"; see
    # pytorch/pytorch#179291). The results are written and the group is destroyed.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
