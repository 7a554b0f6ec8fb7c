"""Every learner's meta-iteration and prediction time on each device torch sees (issue 18, item 4).

    python benchmarks/device_timings.py                  # the CPU, and CUDA where a GPU is visible
    python benchmarks/device_timings.py --quick          # 2 timed iterations, sinusoids only
    python benchmarks/device_timings.py --devices cuda   # refuses to run without a GPU

For each learner on its run defaults (``RunConfig(learner, data, device=...)``: the network,
the inner loop, the tasks per meta-iteration), on sinusoids (1-40-40-1 MLP) and on 5-way
1-shot glyphs (Conv4 of 32 channels on 28x28 images; the gradient-based learners with their
glyph configs' single inner step): one ``learner.meta_step(batch)`` and one prediction
(``learner.adapt`` on one task's support set, then ``predict`` on its query set), median of
the timed repeats after warm-up. On CUDA each timing waits for the device
(``torch.cuda.synchronize``) before the clock is read, and the table adds the peak memory
the device allocated. A device that is asked for and absent is an error, never a quiet
fallback to the CPU; without ``--devices`` the CPU is always timed and CUDA when torch sees
a GPU, and the script says when it does not.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch

from bayesmeta.runs.config import RunConfig
from bayesmeta.runs.config_checks import check_device
from bayesmeta.tasks.task import TaskBatch

REGRESSION = ("maml", "fomaml", "reptile", "bayesian_maml", "variational")
CLASSIFICATION = ("maml", "fomaml", "bayesian_maml", "protonet", "bayesian_protonet", "matching")


@dataclass(frozen=True)
class Row:
    """One learner's timings on one device."""

    device: str
    data: str
    learner: str
    step_ms: float
    predict_ms: float
    peak_mb: float | None


def _wait(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def median_ms(fn: Callable[[], object], device: str, warmup: int, repeats: int) -> float:
    """Median wall-clock milliseconds of ``fn()``, waiting for ``device`` around each call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _wait(device)
        start = time.perf_counter()
        fn()
        _wait(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def config_for(learner: str, data: str, device: str) -> RunConfig:
    """The run config timed for ``learner`` on ``data`` (its defaults; glyphs: 1-shot)."""
    if data != "glyphs":
        return RunConfig(learner=learner, data=data, device=device)
    config = RunConfig(learner=learner, data=data, k_support=1, meta_batch_size=8, device=device)
    if learner in ("maml", "fomaml", "bayesian_maml"):
        # the glyph configs' inner loop (examples/configs/*_glyphs.toml): one step at 0.4
        config = replace(config, inner_steps=1, adapt_steps=1, inner_lr=0.4)
    return config


def time_learner(learner_name: str, data: str, device: str, *, warmup: int, repeats: int) -> Row:
    """Time one meta-iteration and one prediction of ``learner_name`` on ``device``."""
    config = config_for(learner_name, data, device)
    learner = config.build_learner()
    source = config.train_source()
    batch: TaskBatch = source.sample(config.meta_batch_size).to(device)
    task = config.held_out_tasks(1).select(slice(0, 1)).to(device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)

    def step() -> None:
        learner.meta_step(batch)

    def predict() -> None:
        adapted = learner.adapt(task.support_x[0], task.support_y[0])
        adapted.predict(task.query_x[0])

    step_ms = median_ms(step, device, warmup, repeats)
    predict_ms = median_ms(predict, device, warmup, repeats)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.startswith("cuda") else None
    return Row(device, data, learner_name, step_ms, predict_ms, peak)


def devices_to_time(asked: Sequence[str] | None) -> tuple[list[str], str | None]:
    """The devices to time, and a note when CUDA is skipped for want of a GPU.

    Raises
    ------
    ValueError
        If a device that was asked for is not on this machine.

    """
    if asked:
        return [check_device(d) for d in asked], None
    if torch.cuda.is_available():
        return ["cpu", "cuda"], None
    return ["cpu"], "CUDA: torch sees no GPU on this machine, so only the CPU is timed."


def table(rows: Sequence[Row]) -> str:
    """The rows as a markdown table, with each CUDA time over the CPU's where both ran."""
    cpu = {(r.data, r.learner): r for r in rows if r.device == "cpu"}
    lines = [
        "| device | data | learner | meta-iteration ms | prediction ms | step / CPU | peak MB |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        base = cpu.get((r.data, r.learner))
        ratio = f"{r.step_ms / base.step_ms:.2f}" if base is not None else "-"
        peak = f"{r.peak_mb:.0f}" if r.peak_mb is not None else "-"
        lines.append(
            f"| {r.device} | {r.data} | {r.learner} | {r.step_ms:.1f} | {r.predict_ms:.1f} "
            f"| {ratio} | {peak} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--devices", nargs="+", help="devices to time (cpu, cuda, cuda:N)")
    parser.add_argument("--quick", action="store_true", help="2 timed repeats, sinusoids only")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (default 5)")
    parser.add_argument("--learners", nargs="+", help="only these learners")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        devices, note = devices_to_time(args.devices)
    except ValueError as err:
        parser.error(str(err))
    repeats, warmup = (2, 1) if args.quick else (args.repeats, 2)
    plan = [("sinusoid", name) for name in REGRESSION]
    if not args.quick:
        plan += [("glyphs", name) for name in CLASSIFICATION]
    if args.learners:
        plan = [(d, name) for d, name in plan if name in args.learners]
    rows = []
    for device in devices:
        for data, name in plan:
            rows.append(time_learner(name, data, device, warmup=warmup, repeats=repeats))
            print(f"timed {name} on {data} ({device})", flush=True)
    print(f"\ntorch {torch.__version__}, {args.threads} CPU thread(s), median of {repeats}\n")
    print(table(rows))
    if note:
        print(f"\n{note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
