"""The ``bayesmeta`` command: ``run``, ``resume``, ``evaluate`` and ``report`` a run folder.

``bayesmeta run [CONFIG.toml]`` writes a run folder, ``resume`` finishes an interrupted one,
and ``evaluate`` and ``report`` read a finished one.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from bayesmeta.errors import BayesmetaError
from bayesmeta.learners.registry import run_learners
from bayesmeta.runs.config import RunConfig
from bayesmeta.runs.config_file import parse_config, read_config
from bayesmeta.runs.data import data_families
from bayesmeta.runs.experiment import (
    BASELINE_NAME,
    RunResult,
    baseline_verdict,
    format_table,
    quick,
    resume_run,
    run_experiment,
)
from bayesmeta.runs.renames import upgrade_settings

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``bayesmeta`` command."""
    parser = argparse.ArgumentParser(prog="bayesmeta", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        help="meta-train a learner on a built-in task family, evaluate it, write a run folder",
        description="Meta-train, evaluate on held-out tasks, print a metrics table and write "
        "a run folder. With no options: MAML on 5-shot sinusoids. Ready configs for every "
        "learner and data source are in examples/configs/.",
    )
    d = RunConfig()
    run.add_argument(
        "config",
        nargs="?",
        help="a TOML run config (see examples/configs/); options given here override it",
    )
    # Options left out do not appear in the namespace (SUPPRESS), so that only the ones
    # given on the command line override the config file's values.
    hidden = argparse.SUPPRESS
    run.add_argument(
        "--learner",
        choices=run_learners(),  # every learner registered to run (bayesmeta.runs.learners)
        default=hidden,
        help=f"(default {d.learner})",
    )
    run.add_argument(
        "--data",
        choices=data_families(),  # every registered data family (bayesmeta.runs.data)
        default=hidden,
        help=f"(default {d.data})",
    )
    for flag, kind, text in (
        ("--k-support", int, f"support points per task, per class for images ({d.k_support})"),
        ("--k-query", int, "query points per meta-training task, per class for images"),
        ("--n-way", int, f"classes per episode, image data (default {d.n_way})"),
        ("--backbone", str, "image data: conv4 or mlp (default: mlp for digits, else conv4)"),
        ("--iterations", int, "meta-iterations (default: 2000 for digits, else 10000)"),
        ("--meta-batch-size", int, f"(default {d.meta_batch_size})"),
        ("--inner-steps", int, f"(default {d.inner_steps})"),
        ("--adapt-steps", int, "test-time steps (default 10 gradient steps, 300 SVI steps)"),
        ("--inner-lr", float, f"(default {d.inner_lr})"),
        ("--outer-lr", float, f"(default {d.outer_lr})"),
        ("--eval-tasks", int, f"(default {d.eval_tasks})"),
        ("--prior-scale", float, "initial prior scale of the Bayesian learners"),
        ("--path", str, "the CSV file (data table) or image folder (data image_folder)"),
        ("--source", str, "learner transfer: the source run folder or .safetensors file"),
        ("--checkpoint-every", int, f"iterations between checkpoints ({d.checkpoint_every})"),
        ("--seed", int, f"(default {d.seed})"),
        ("--device", str, "cpu, cuda or cuda:N: where the learner trains (default cpu)"),
    ):
        run.add_argument(flag, type=kind, default=hidden, help=text)
    for old in OLD_FLAGS:  # renamed; accepted for one release, with a warning
        run.add_argument(old, type=int, default=hidden, help=argparse.SUPPRESS)
    run.add_argument("--out", default="runs", help="parent folder of the run folder")
    run.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run of the same pipeline: at most 50 meta-iterations and 50 held-out "
        "tasks (image data: 20 and 20, 2 tasks per meta-iteration and, unless given, 5 query "
        "images per class and at most 50 test-time adaptation steps)",
    )
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    resume = sub.add_parser(
        "resume",
        help="finish an interrupted run from its folder's last checkpoint",
        description="Continue meta-training from RUN_DIR/checkpoint.safetensors with the "
        "run's own config, then evaluate and write the run's files, exactly as if the run "
        "had never stopped.",
    )
    resume.add_argument("run_dir", help="a folder written by an unfinished `bayesmeta run`")
    resume.add_argument("--no-progress", action="store_true", help="hide progress bars")
    resume.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    evaluate = sub.add_parser(
        "evaluate",
        help="re-evaluate a run folder's learner on the run's held-out tasks",
        description="Reload RUN_DIR's learner, score it on the run's own held-out tasks, print "
        "the metrics table and write RUN_DIR/evaluation.json.",
    )
    evaluate.add_argument("run_dir", help="a folder written by `bayesmeta run`")
    evaluate.add_argument("--tasks", type=int, default=None, help="only the first N tasks")
    report = sub.add_parser(
        "report",
        help="calibration figures and a markdown summary of a run folder",
        description="Reload a run folder's learner, predict on the run's held-out tasks and "
        "write RUN_DIR/report/: report.md (opening with a verdict on calibration, bias, "
        "convergence and the variational posterior), pit.png, coverage.png and loss.png. "
        "Prints the coverage of the central predictive intervals and the verdict.",
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


def _evaluate(args: argparse.Namespace) -> int:
    """``bayesmeta evaluate``: score the run's learner again and print the table."""
    from bayesmeta.diagnostics.report import evaluate_run

    try:
        result = evaluate_run(args.run_dir, num_tasks=args.tasks)
    except (BayesmetaError, OSError) as err:
        print(f"bayesmeta evaluate: error: {err}", file=sys.stderr)
        return 1
    title = f"{args.run_dir}: {result.num_tasks} held-out tasks, mean ± 95% CI"
    print(format_table({"learner": result.summary()}, title=title))
    print(f"wrote {Path(args.run_dir) / 'evaluation.json'}")
    return 0


def _report(args: argparse.Namespace) -> int:
    """``bayesmeta report``: write the report and print the coverage table."""
    if args.tasks < 1:
        print("bayesmeta report: error: --tasks must be >= 1", file=sys.stderr)
        return 2
    from bayesmeta.diagnostics.report import diagnose_run, run_verdict, write_report

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
    print(f"{c.learner} on {c.data}, {c.k_support}-shot: {diagnostics.num_tasks} held-out tasks")
    if diagnostics.reliability is not None:
        print(f"expected calibration error: {diagnostics.reliability.ece:.4f}")
    else:
        print(f"PIT: Kolmogorov-Smirnov distance from uniform {diagnostics.ks_distance:.4f}")
        print("central-interval coverage\nnominal  observed")
        for nominal, observed in diagnostics.coverage_rows():
            print(f"{nominal:7.1f}  {observed:8.3f}")
    print("verdict (what to do: see the report)")
    for finding in run_verdict(diagnostics):
        status = "not assessed" if finding.status == "missing" else finding.status
        print(f"  {finding.topic}: {status}: {finding.message}")
    print(f"report: {path}")
    return 0


def _set_threads(command: str, threads: int | None) -> bool:
    """Apply ``--threads``; False (after printing the error) if it is not positive."""
    if threads is None:
        return True
    if threads < 1:
        print(f"bayesmeta {command}: error: --threads must be >= 1", file=sys.stderr)
        return False
    torch.set_num_threads(threads)
    return True


def _print_run(result: RunResult) -> None:
    """The metrics table of a finished run and where its folder is."""
    config = result.config
    title = (
        f"{config.learner} on {config.data}, {config.k_support}-shot: "
        f"{result.evaluation.num_tasks} held-out tasks, mean ± 95% CI "
        f"({config.meta_iterations} meta-iterations in {result.timings['meta_fit_s']:.1f} s)"
    )
    rows = {config.learner: result.evaluation.summary()}
    if result.baseline is not None:
        rows[BASELINE_NAME] = result.baseline.summary()
    print(format_table(rows, title=title))
    verdict = baseline_verdict(result)
    if verdict is not None:
        print(verdict)
    print(f"run folder: {result.run_dir}")


def _resume(args: argparse.Namespace) -> int:
    """``bayesmeta resume``: finish an interrupted run."""
    if not _set_threads("resume", args.threads):
        return 2
    try:
        result = resume_run(args.run_dir, progress=False if args.no_progress else None)
    except (BayesmetaError, OSError) as err:
        print(f"bayesmeta resume: error: {err}", file=sys.stderr)
        return 1
    _print_run(result)
    return 0


#: Renamed flags of ``bayesmeta run``: hidden, they still work and print a warning.
OLD_FLAGS = {"--shots": "--k-support", "--eval-inner-steps": "--adapt-steps"}


def _upgraded(raw: dict[str, Any], path: str) -> dict[str, Any]:
    """A config file's settings under their new names; old names are warned of on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        out = upgrade_settings(raw, source=path)
    for warning in caught:
        print(f"bayesmeta run: warning: {warning.message}", file=sys.stderr)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bayesmeta`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "report":
        return _report(args)
    if args.command == "evaluate":
        return _evaluate(args)
    if args.command == "resume":
        return _resume(args)
    if args.command == "run":
        names = {f.name for f in fields(RunConfig)}
        given = {k: v for k, v in vars(args).items() if k in names}
        for old, new in OLD_FLAGS.items():
            dest = old.removeprefix("--").replace("-", "_")
            if dest in vars(args):
                print(
                    f"bayesmeta run: warning: {old} is renamed {new}; use {new} (the old flag "
                    "goes in the next release)",
                    file=sys.stderr,
                )
                given.setdefault(new.removeprefix("--").replace("-", "_"), getattr(args, dest))
        for key in ("path", "source"):  # absolute in config.json: resume and report work anywhere
            if key in given:
                given[key] = str(Path(given[key]).resolve())
        try:
            raw = {} if args.config is None else _upgraded(read_config(args.config), args.config)
            source = "the command line" if args.config is None else f"{args.config} with options"
            config = parse_config({**raw, **given}, source=source)
        except ValueError as err:  # ConfigError is a ValueError
            print(f"bayesmeta run: error: {err}", file=sys.stderr)
            return 2
        if args.quick:
            config = quick(config, explicit={*raw, *given})
        if not _set_threads("run", args.threads):
            return 2
        try:
            result = run_experiment(
                config, out_dir=args.out, progress=False if args.no_progress else None
            )
        except (BayesmetaError, ValueError) as err:  # e.g. n_way above the classes there are
            print(f"bayesmeta run: error: {err}", file=sys.stderr)
            return 1
        _print_run(result)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
