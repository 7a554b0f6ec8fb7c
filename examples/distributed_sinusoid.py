"""Data-parallel meta-training of MAML on sinusoids, over torchrun's processes.

Every process draws the same meta-batches (the source is seeded alike), trains on its share
of each batch's tasks, and the meta-gradients are summed before the same update, so the
result matches one process. Run alone it is ordinary meta-training.

Run:  torchrun --standalone --nproc_per_node=2 examples/distributed_sinusoid.py
      python examples/distributed_sinusoid.py            (one process)
      python examples/distributed_sinusoid.py --quick    (seconds; what CI runs)
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.distributed as dist

import bayesmeta as bm
from bayesmeta.runs.experiment import format_table
from bayesmeta.scoring.evaluation import evaluate
from bayesmeta.training.distributed import init_from_env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    args = parser.parse_args()
    iterations = 20 if args.quick else args.iterations
    torch.set_num_threads(1)
    distributed = init_from_env()  # False unless launched by torchrun
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1

    torch.manual_seed(0)  # rank 0's initial weights are broadcast to the others anyway
    learner = bm.MAML((1, 40, 40, 1), inner_lr=0.01, inner_steps=5)
    start = time.perf_counter()
    history = learner.meta_fit(bm.Sinusoid(5, 10, seed=0), iterations, meta_batch_size=24)
    seconds = time.perf_counter() - start
    if rank == 0:
        learner.fit_noise_scale(bm.Sinusoid(5, 10, seed=1).sample(200))
        result = evaluate(learner, bm.Sinusoid(5, 50, seed=2), 200)
        title = (
            f"MAML, {iterations} iterations on {world} process(es) in {seconds:.1f} s "
            f"(last loss {history.loss[-1]:.3f}); 200 held-out 5-shot tasks"
        )
        print(format_table({"MAML": result.summary()}, title=title))
    if distributed:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
