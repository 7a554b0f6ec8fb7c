"""``bayesmeta run`` meta-trains, evaluates and writes a run folder; ``report`` diagnoses one."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import fields, replace

import torch

from bayesmeta.errors import BayesmetaError
from bayesmeta.experiment import RunConfig, format_table, quick, run_experiment

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``bayesmeta`` command."""
    parser = argparse.ArgumentParser(prog="bayesmeta", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        help="meta-train a learner on a built-in task family, evaluate it, write a run folder",
        description="Meta-train, evaluate on held-out tasks, print a metrics table and write "
        "a run folder. With no options: MAML on 5-shot sinusoids.",
    )
    d = RunConfig()
    run.add_argument(
        "--learner", choices=["maml", "fomaml", "reptile", "bayesian_maml"], default=d.learner
    )
    run.add_argument("--data", choices=["sinusoid", "sinusoid_or_line"], default=d.data)
    run.add_argument("--shots", type=int, default=d.shots, help="support points per task")
    run.add_argument("--iterations", type=int, default=d.iterations, help="meta-iterations")
    run.add_argument("--meta-batch-size", type=int, default=d.meta_batch_size)
    run.add_argument("--inner-steps", type=int, default=d.inner_steps)
    run.add_argument("--eval-inner-steps", type=int, default=d.eval_inner_steps)
    run.add_argument("--inner-lr", type=float, default=d.inner_lr)
    run.add_argument("--outer-lr", type=float, default=d.outer_lr)
    run.add_argument("--eval-tasks", type=int, default=d.eval_tasks)
    run.add_argument("--seed", type=int, default=d.seed)
    run.add_argument("--out", default="runs", help="parent folder of the run folder")
    run.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    report = sub.add_parser(
        "report",
        help="calibration figures and a markdown summary of a run folder",
        description="Reload a run folder's learner, predict on the run's held-out tasks and "
        "write RUN_DIR/report/: report.md, pit.png, coverage.png and loss.png. Prints the "
        "coverage of the central predictive intervals.",
    )
    report.add_argument("run_dir", help="a folder written by `bayesmeta run`")
    report.add_argument(
        "--tasks",
        type=int,
        default=200,
        help="held-out tasks to diagnose (at most the run's --eval-tasks; default 200)",
    )
    report.add_argument("--quick", action="store_true", help="diagnose 20 tasks only")
    report.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _report(args: argparse.Namespace) -> int:
    """``bayesmeta report``: write the report and print the coverage table."""
    if args.tasks < 1:
        print("bayesmeta report: error: --tasks must be >= 1", file=sys.stderr)
        return 2
    from bayesmeta.diagnostics.report import diagnose_run, write_report

    try:
        diagnostics = diagnose_run(
            args.run_dir,
            num_tasks=min(args.tasks, 20) if args.quick else args.tasks,
            progress=False if args.no_progress else None,
        )
        path = write_report(diagnostics)
    except (BayesmetaError, OSError, ImportError) as err:
        print(f"bayesmeta report: error: {err}", file=sys.stderr)
        return 1
    c = diagnostics.config
    print(f"{c.learner} on {c.data}, {c.shots}-shot: {diagnostics.num_tasks} held-out tasks")
    if diagnostics.reliability is not None:
        print(f"expected calibration error: {diagnostics.reliability.ece:.4f}")
    else:
        print(f"PIT: Kolmogorov-Smirnov distance from uniform {diagnostics.ks_distance:.4f}")
        print("central-interval coverage\nnominal  observed")
        for nominal, observed in diagnostics.coverage_rows():
            print(f"{nominal:7.1f}  {observed:8.3f}")
    print(f"report: {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bayesmeta`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "report":
        return _report(args)
    if args.command == "run":
        names = {f.name for f in fields(RunConfig)}
        values = {k: v for k, v in vars(args).items() if k in names}
        try:
            config = replace(RunConfig(), **values)
        except ValueError as err:
            print(f"bayesmeta run: error: {err}", file=sys.stderr)
            return 2
        if args.quick:
            config = quick(config)
        if args.threads is not None:
            if args.threads < 1:
                print("bayesmeta run: error: --threads must be >= 1", file=sys.stderr)
                return 2
            torch.set_num_threads(args.threads)
        try:
            result = run_experiment(
                config, out_dir=args.out, progress=False if args.no_progress else None
            )
        except BayesmetaError as err:
            print(f"bayesmeta run: error: {err}", file=sys.stderr)
            return 1
        title = (
            f"{config.learner} on {config.data}, {config.shots}-shot: "
            f"{result.evaluation.num_tasks} held-out tasks, mean ± 95% CI "
            f"({config.iterations} meta-iterations in {result.timings['meta_fit_s']:.1f} s)"
        )
        print(format_table({config.learner: result.evaluation.summary()}, title=title))
        print(f"run folder: {result.run_dir}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
