"""Data-parallel meta-training over ``torch.distributed`` ranks.

Every rank draws the same meta-batch of ``T`` tasks (the task source is seeded
alike on every rank), computes the meta-update direction on its own contiguous
shard of ``T_r`` tasks, weights it by ``T_r / T`` and all-reduces the sum. The
meta-losses are means over tasks, so the sum is exactly the full batch's
gradient, and every rank then applies the same clipped update to the same
parameters. For deterministic learners (MAML, first-order MAML, Reptile,
ProtoNet, Matching Networks) the result matches a single-process run with the
same seed up to float round-off; BayesianMAML's Monte Carlo noise is drawn per
shard, so it matches in distribution only. Round-off is not always small in the
result: Adam divides each gradient entry by its running scale, so an entry that
is zero up to round-off (Reptile's ``theta - mean_t phi_t`` can be) becomes a
step of up to ``lr`` whose sign depends on the summation order.

Launch with ``torchrun --nproc_per_node=N script.py`` (gloo on CPU, nccl on
GPU); :func:`init_from_env` sets the process group up from torchrun's
environment, and ``learner.meta_fit(...)`` trains data-parallel whenever a
process group of more than one rank is initialised.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import Tensor

from bayesmeta.errors import BayesmetaError
from bayesmeta.tasks.task import TaskBatch

__all__ = [
    "DistributedError",
    "all_reduce_gradients",
    "broadcast_seed",
    "check_same_batch",
    "data_parallel_step",
    "distributed_meta_gradients",
    "init_from_env",
    "is_distributed",
    "shard",
    "shard_range",
    "sync_parameters",
]


class DistributedError(BayesmetaError, RuntimeError):
    """The ranks disagree (different tasks or parameters), or the batch cannot be split."""


def is_distributed() -> bool:
    """Whether a process group of more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init_from_env(backend: str | None = None) -> bool:
    """Initialise the default process group from torchrun's environment, if launched by it.

    Parameters
    ----------
    backend
        ``"gloo"`` or ``"nccl"``; default nccl when CUDA is available, else gloo.

    Returns
    -------
    bool
        Whether a process group is now initialised (``False`` when not launched
        by ``torchrun``: ``WORLD_SIZE`` unset).

    """
    if dist.is_initialized():
        return True
    if "WORLD_SIZE" not in os.environ or not dist.is_available():
        return False
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return True


def shard_range(count: int, rank: int, world_size: int) -> slice:
    """Rank ``rank``'s contiguous share of ``count`` tasks (sizes differ by at most one).

    Raises
    ------
    DistributedError
        If there are fewer tasks than ranks.

    """
    if count < world_size:
        raise DistributedError(
            f"a meta-batch of {count} tasks cannot be split over {world_size} ranks; use "
            f"meta_batch_size >= {world_size}"
        )
    return slice(rank * count // world_size, (rank + 1) * count // world_size)


def shard(batch: TaskBatch, rank: int, world_size: int) -> TaskBatch:
    """Rank ``rank``'s contiguous share of the batch's tasks (see :func:`shard_range`)."""
    return batch.select(shard_range(len(batch), rank, world_size))


def sync_parameters(module: torch.nn.Module) -> None:
    """Broadcast rank 0's parameters and buffers to every rank (before training)."""
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def broadcast_seed(seed: int) -> int:
    """Rank 0's ``seed`` on every rank (for generators that must agree across ranks)."""
    value = torch.tensor([seed], dtype=torch.int64, device=_device())
    dist.broadcast(value, src=0)
    return int(value)


def check_same_batch(batch: TaskBatch) -> None:
    """Raise unless every rank holds the same tasks (compared by a cheap fingerprint).

    Raises
    ------
    DistributedError
        If the ranks' batches differ.

    """
    parts = [batch.support_x, batch.support_y, batch.query_x, batch.query_y]
    mine = torch.stack([p.double().sum() for p in parts] + [torch.tensor(float(len(batch)))])
    mine = mine.to(_device())
    low, high = mine.clone(), mine.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    if not torch.equal(low, high):
        raise DistributedError(
            "the ranks drew different meta-batches; seed the task source identically on every "
            "rank (e.g. Sinusoid(..., seed=0)) so that each draws the same tasks"
        )


def distributed_meta_gradients(learner: object, batch: TaskBatch, *, check: bool) -> float:
    """The full batch's meta-gradient in ``.grad`` on every rank; returns the full loss.

    Parameters
    ----------
    learner
        A :class:`~bayesmeta.learners.MetaLearner` (``meta_gradients`` and
        ``parameters``).
    batch
        The meta-batch, the same on every rank.
    check
        Compare the ranks' batches first (done on the first iteration).

    """
    world, rank = dist.get_world_size(), dist.get_rank()
    if check:
        check_same_batch(batch)
    part = shard(batch, rank, world)
    value = learner.meta_gradients(part)  # type: ignore[attr-defined]
    params: list[Tensor] = [p for p in learner.parameters() if p.requires_grad]  # type: ignore[attr-defined]
    return all_reduce_gradients(params, value, len(part) / len(batch))


def data_parallel_step(
    learner: object, apply_gradients: Callable[[float], float]
) -> Callable[[TaskBatch], float]:
    """A meta-training step that sums the ranks' shards' meta-gradients, then applies them.

    The ranks' batches are compared on the first call only.

    Parameters
    ----------
    learner
        A :class:`~bayesmeta.learners.MetaLearner` (see :func:`distributed_meta_gradients`).
    apply_gradients
        Clips, checks and applies the gradients held in ``.grad``; takes and returns the
        meta-loss.

    """
    first = [True]

    def step(batch: TaskBatch) -> float:
        value = distributed_meta_gradients(learner, batch, check=first[0])
        first[0] = False
        return apply_gradients(value)

    return step


def all_reduce_gradients(params: list[Tensor], value: float, weight: float) -> float:
    """Replace each ``.grad`` by the sum over ranks of ``weight * grad``; return the summed loss.

    Parameters
    ----------
    params
        The parameters, in the same order on every rank; a missing ``.grad``
        counts as zero, and a parameter that no rank gave a gradient keeps none
        (optimisers then skip it, as they would in one process).
    value
        This rank's loss, summed over the ranks with the same weights.
    weight
        This rank's share of the meta-batch, ``T_r / T``.

    """
    dtype, device = params[0].dtype, params[0].device
    has = [p.grad is not None for p in params]
    flat = torch.cat(
        [
            (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) * weight
            for p in params
        ]
        # the loss, and which parameters got a gradient on this rank
        + [torch.tensor([value * weight, *map(float, has)], dtype=dtype, device=device)]
    )
    dist.all_reduce(flat)
    offset = 0
    for i, p in enumerate(params):
        n = p.numel()
        # a parameter no rank touched keeps no gradient (optimisers then skip it, as they
        # would in one process)
        got = float(flat[-len(params) + i]) > 0
        p.grad = flat[offset : offset + n].view_as(p).clone() if got else None
        offset += n
    return float(flat[-len(params) - 1])


def _device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
