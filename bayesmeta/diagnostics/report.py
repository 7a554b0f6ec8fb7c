"""Diagnose a run folder: calibration figures and a markdown report.

:func:`write_report` reads a folder written by :func:`~bayesmeta.runs.experiment.run_experiment`
(``bayesmeta run``), reloads its learner, predicts on the run's own held-out
tasks (same source, same :data:`~bayesmeta.runs.experiment.EVAL_SEED`) and writes
``RUN_DIR/report/``: ``report.md``, ``pit.png``, ``coverage.png`` and
``loss.png`` (``reliability.png`` instead of the PIT and coverage figures for
class predictions). The report opens with a verdict (:func:`run_verdict`, see
:mod:`bayesmeta.diagnostics.verdict`) and lists only the settings that apply to the run's
learner and data. The figures need matplotlib (``pip install bayesmeta[plot]``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor

from bayesmeta._checks import check_count
from bayesmeta.diagnostics.verdict import Finding, format_verdict, verdict
from bayesmeta.io.checkpoint import load_learner
from bayesmeta.predictions.class_prediction import ClassPrediction
from bayesmeta.runs.config import applies
from bayesmeta.runs.experiment import EVAL_SEED, RunConfig, evaluate_held_out
from bayesmeta.runs.folder import (
    CHECKPOINT,
    FINISHED_FILES,
    RunFolderError,
    read_json,
    read_run_config,
)
from bayesmeta.scoring import metrics
from bayesmeta.scoring.calibration import coverage_curve, pit_values, regression_calibration_error
from bayesmeta.scoring.chunks import predict_chunks
from bayesmeta.scoring.evaluation import Adaptable, Evaluation
from bayesmeta.scoring.reliability import Reliability, reliability
from bayesmeta.tasks.task import TaskBatch

__all__ = [
    "REPORT_LEVELS",
    "Finding",
    "RunDiagnostics",
    "RunFolderError",
    "diagnose_run",
    "evaluate_run",
    "run_verdict",
    "settings_rows",
    "write_report",
]

#: Nominal levels of the coverage figure: 0.05, 0.10, ..., 0.95 (the table shows 0.1, ..., 0.9).
REPORT_LEVELS: tuple[float, ...] = tuple(i / 20 for i in range(1, 20))


@dataclass(frozen=True, eq=False)
class RunDiagnostics:
    """A run folder's contents and its learner's calibration on held-out tasks.

    Attributes
    ----------
    run_dir : Path
        The run folder.
    config : RunConfig
        Its ``config.json``.
    metrics : dict
        Its ``metrics.json``.
    history : dict
        Its ``history.json`` (``loss`` holds one value per meta-iteration).
    num_tasks : int
        Held-out tasks diagnosed ``T``: the first ones of those the run scored.
    pit : Tensor or None
        PIT values of every query target, pooled ``[T * N * O]`` (regression).
    levels, coverage : Tensor or None
        Nominal central-interval levels :data:`REPORT_LEVELS` ``[L]`` and their
        observed coverage ``[L]``, pooled over tasks (regression).
    calibration_error : Tensor or None
        PACOH's calibration error per task ``[T]`` (regression).
    reliability : Reliability or None
        Reliability-diagram data over all query points (classification).

    """

    run_dir: Path
    config: RunConfig
    metrics: dict[str, Any]
    history: dict[str, Any]
    num_tasks: int
    pit: Tensor | None = None
    levels: Tensor | None = None
    coverage: Tensor | None = None
    calibration_error: Tensor | None = None
    reliability: Reliability | None = None

    @property
    def ks_distance(self) -> float:
        """Kolmogorov-Smirnov distance between the PIT values and ``U[0, 1]``."""
        if self.pit is None:
            raise ValueError("no PIT values: the run makes class predictions")
        u = self.pit.double().sort().values
        n = u.numel()
        i = torch.arange(1, n + 1, dtype=u.dtype)
        return float(torch.maximum(i / n - u, u - (i - 1) / n).max())

    def coverage_rows(self) -> list[tuple[float, float]]:
        """``(nominal, observed)`` coverage at the levels 0.1, 0.2, ..., 0.9."""
        if self.levels is None or self.coverage is None:
            raise ValueError("no coverage: the run makes class predictions")
        return [(float(a), float(b)) for a, b in zip(self.levels, self.coverage, strict=True)][1::2]


def _load(run_dir: Path) -> tuple[RunConfig, dict[str, Any], dict[str, Any]]:
    config = read_run_config(run_dir)
    missing = [name for name in FINISHED_FILES if not (run_dir / name).is_file()]
    if missing:
        unfinished = (run_dir / CHECKPOINT).is_file()
        raise RunFolderError(
            f"{run_dir} is not a finished run folder: it has no {', '.join(missing)}"
            + (
                " (the run was interrupted: continue it with `bayesmeta resume`)"
                if unfinished
                else " (run folders are written by `bayesmeta run`)"
            )
        )
    metrics_json = read_json(run_dir / "metrics.json")
    table = metrics_json.get("metrics") if isinstance(metrics_json, dict) else None
    if not isinstance(table, dict) or not all(
        isinstance(v, dict) and {"mean", "ci95"} <= set(v) for v in table.values()
    ):
        raise RunFolderError(f"{run_dir / 'metrics.json'} has no 'metrics' table of means and CIs")
    history = read_json(run_dir / "history.json")
    if not isinstance(history, dict) or not isinstance(history.get("loss"), list):
        raise RunFolderError(f"{run_dir / 'history.json'} has no 'loss' list")
    return config, metrics_json, history


def _held_out(
    run_dir: Path, num_tasks: int | None
) -> tuple[RunConfig, dict[str, Any], dict[str, Any], Adaptable, TaskBatch]:
    """The run's files, its learner, and the first ``num_tasks`` of its held-out tasks.

    The tasks are drawn again exactly as :func:`~bayesmeta.runs.experiment.run_experiment`
    drew the ones behind ``metrics.json`` (all of them when ``num_tasks`` is ``None``).
    """
    config, metrics_json, history = _load(run_dir)
    learner = load_learner(run_dir / "model.safetensors")
    if not callable(getattr(learner, "adapt", None)):
        raise RunFolderError(f"the learner in {run_dir / 'model.safetensors'} cannot adapt")
    batch = config.held_out_tasks(EVAL_SEED)
    if num_tasks is not None:
        batch = batch.select(slice(0, num_tasks))
    return config, metrics_json, history, cast(Adaptable, learner), batch


def evaluate_run(run_dir: str | Path, *, num_tasks: int | None = None) -> Evaluation:
    """Re-evaluate a run's saved learner on the run's held-out tasks; write ``evaluation.json``.

    Parameters
    ----------
    run_dir
        A folder written by :func:`~bayesmeta.runs.experiment.run_experiment`.
    num_tasks
        Score only the first ``num_tasks`` of the run's ``eval_tasks`` held-out
        tasks (drawn again exactly as the run drew them); all by default.

    Returns
    -------
    Evaluation
        The same metrics as the run's ``metrics.json``: posterior sampling
        is seeded as in the run (see
        :func:`~bayesmeta.runs.experiment.evaluate_held_out`).

    Raises
    ------
    RunFolderError
        If ``run_dir`` is not a run folder.
    CheckpointError
        If ``model.safetensors`` cannot be loaded.

    """
    run_dir = Path(run_dir)
    if num_tasks is not None:
        check_count("num_tasks", num_tasks, minimum=1)
    config, _, _, learner, batch = _held_out(run_dir, num_tasks)
    result = evaluate_held_out(learner, batch, chunk_size=config.eval_chunk_size)
    out = {"num_tasks": result.num_tasks, "metrics": result.to_dict()}
    (run_dir / "evaluation.json").write_text(json.dumps(out, indent=2) + "\n")
    return result


def diagnose_run(
    run_dir: str | Path, *, num_tasks: int = 200, progress: bool | None = None
) -> RunDiagnostics:
    """Reload a run's learner and measure its calibration on the run's held-out tasks.

    Parameters
    ----------
    run_dir
        A folder written by :func:`~bayesmeta.runs.experiment.run_experiment`.
    num_tasks
        Tasks to diagnose: the first ``min(num_tasks, config.eval_tasks)`` of
        the tasks behind ``metrics.json``, drawn again exactly as the run drew them.
    progress
        Progress bar over the tasks (``None``: only when stderr is a terminal).

    Returns
    -------
    RunDiagnostics
        PIT values, coverage and PACOH's calibration error for regression;
        reliability-diagram data for classification.

    Raises
    ------
    RunFolderError
        If ``run_dir`` is not a run folder (naming the missing or unreadable file).
    CheckpointError
        If ``model.safetensors`` cannot be loaded.

    """
    check_count("num_tasks", num_tasks, minimum=1)
    run_dir = Path(run_dir)
    config, metrics_json, history, adaptable, batch = _held_out(run_dir, num_tasks)
    pits: list[Tensor] = []
    errors: list[Tensor] = []
    hits = torch.zeros(len(REPORT_LEVELS), dtype=torch.float64)
    probs: list[Tensor] = []
    chunks = predict_chunks(  # as the run evaluated them: same chunks, same seed
        adaptable,
        batch,
        chunk_size=config.eval_chunk_size,
        seed=EVAL_SEED,
        progress=progress,
        desc="report",
    )
    for _, pred, y in chunks:
        with torch.no_grad():
            if isinstance(pred, ClassPrediction):
                probs.append(pred.probs.detach().cpu())
                continue
            u = pit_values(pred, y).detach().cpu()
            pits.append(u.reshape(-1))
            errors.append(regression_calibration_error(pred, y).detach().cpu())
            _, observed = coverage_curve(pred, y, REPORT_LEVELS)
            hits += observed.detach().cpu().double() * u.numel()
    common = (run_dir, config, metrics_json, history, len(batch))
    if probs:
        return RunDiagnostics(*common, reliability=reliability(torch.cat(probs), batch.query_y))
    pit, levels = torch.cat(pits), torch.tensor(REPORT_LEVELS, dtype=torch.float64)
    coverage, error = hits / pit.numel(), torch.cat(errors)
    return RunDiagnostics(*common, pit, levels, coverage, error)


def run_verdict(d: RunDiagnostics) -> list[Finding]:
    """The :func:`~bayesmeta.diagnostics.verdict.verdict` on a diagnosed run.

    From the run's ``metrics.json`` (its 90% coverage or ECE, and a PSIS ``khat`` if it
    holds one), its loss trace, and the PIT values or reliability data of the diagnosis.
    """
    pit = None if d.pit is None else d.pit.reshape(d.num_tasks, -1)  # tasks first
    return verdict(d.metrics, d.history, config=d.config, pit=pit, reliability=d.reliability)


def settings_rows(config: RunConfig) -> list[tuple[str, Any]]:
    """``(setting, value)`` of the settings that apply to the run's learner and data.

    A setting read only by other learners or data sources (``image_size`` for sinusoids,
    ``inner_lr`` for ProtoNet; see :func:`~bayesmeta.runs.config.applies`) is left out;
    every other one is kept. Unset query counts show the count the run used.
    """
    rows: list[tuple[str, Any]] = []
    for f in fields(RunConfig):
        if not applies(f.name, config.learner, config.data):
            continue
        value = getattr(config, f.name)
        if value is None and f.name in ("k_query", "eval_k_query"):
            used = config.train_query if f.name == "k_query" else config.held_out_query
            value = f"default ({used})" if used is not None else "default"
        rows.append((f.name, value))
    return rows


def _metric_rows(metrics_json: dict[str, Any]) -> list[str]:
    """The held-out metrics as a markdown table, with the run's baseline beside them if any."""
    ours = metrics_json["metrics"]
    baseline = metrics_json.get("baseline")
    theirs = baseline.get("metrics") if isinstance(baseline, dict) else None
    if not isinstance(theirs, dict):
        return [
            "| metric | mean | ± 95% CI |\n|---|---|---|",
            *(f"| {k} | {v['mean']:.4f} | {v['ci95']:.4f} |" for k, v in ours.items()),
        ]
    name = baseline.get("name", "baseline") if isinstance(baseline, dict) else "baseline"
    rows = [f"| metric | learner | {name} |\n|---|---|---|"]
    for k, v in ours.items():
        other = theirs.get(k)
        said = f"{other['mean']:.4f} ± {other['ci95']:.4f}" if isinstance(other, dict) else "-"
        rows.append(f"| {k} | {v['mean']:.4f} ± {v['ci95']:.4f} | {said} |")
    return rows


def write_report(
    run: str | Path | RunDiagnostics, *, num_tasks: int = 200, progress: bool | None = None
) -> Path:
    """Write ``RUN_DIR/report/``: calibration figures, the loss trace and ``report.md``.

    Parameters
    ----------
    run
        A folder written by :func:`~bayesmeta.runs.experiment.run_experiment`, or
        the :func:`diagnose_run` of one.
    num_tasks, progress
        Passed to :func:`diagnose_run` (ignored for a :class:`RunDiagnostics`).

    Returns
    -------
    Path
        ``RUN_DIR/report/report.md``; the PNGs lie beside it.

    Raises
    ------
    RunFolderError
        If ``run`` is not a run folder.
    ImportError
        Without matplotlib.

    """
    try:
        from bayesmeta.scoring import plotting
    except ImportError as err:
        raise ImportError("the report needs matplotlib: pip install bayesmeta[plot]") from err
    d = (
        run
        if isinstance(run, RunDiagnostics)
        else diagnose_run(run, num_tasks=num_tasks, progress=progress)
    )
    out = d.run_dir / "report"
    out.mkdir(exist_ok=True)
    c = d.config
    lines = [
        f"# Report: {c.learner} on {c.data}, {c.k_support}-shot\n",
        "## Verdict\n",
        *format_verdict(run_verdict(d)),
        "\n## Run\n",
        f"Run folder `{d.run_dir.resolve().name}`: {c.meta_iterations} meta-iterations of "
        f"{c.meta_batch_size} tasks, seed {c.seed}. Settings that {c.learner} on {c.data} "
        "does not read are not listed.\n",
        "| setting | value |\n|---|---|",
        *(f"| {name} | {value} |" for name, value in settings_rows(c)),
        "\n## Held-out metrics\n",
        f"From `metrics.json`: {d.metrics.get('num_tasks', '?')} held-out tasks, mean ± 95% CI.\n",
        *_metric_rows(d.metrics),
    ]
    if d.metrics.get("noise_scale") is not None:
        lines.append(f"\nNoise scale: {', '.join(f'{s:.4g}' for s in d.metrics['noise_scale'])}.")
    lines.append(f"\n## Calibration\n\nOn the first {d.num_tasks} of these tasks.\n")
    if d.reliability is not None:
        plotting.plot_reliability(d.reliability, out / "reliability.png")
        rel = d.reliability
        lines += [
            f"Expected calibration error ({rel.count.numel()} bins): {rel.ece:.4f}; "
            f"largest bin gap {rel.max_gap:.4f}.\n",
            "![Reliability diagram](reliability.png)",
        ]
    elif d.pit is not None and d.levels is not None and d.coverage is not None:
        plotting.plot_pit_histogram(d.pit, out / "pit.png", title="PIT, pooled over tasks")
        plotting.plot_coverage_curve(d.levels, d.coverage, out / "coverage.png")
        n, pit = d.pit.numel(), d.pit.double()
        ce = metrics.mean_ci(d.calibration_error) if d.calibration_error is not None else None
        tails = float(((pit < 0.05) | (pit > 0.95)).double().mean())
        lines += [
            "PACOH calibration error (mean over tasks of mean |P(F(y) <= q) - q| at 20 levels "
            + (f"0.05-0.95): {ce[0]:.4f} ± {ce[1]:.4f}.\n" if ce else "0.05-0.95): n/a.\n"),
            f"PIT of {n} query targets: Kolmogorov-Smirnov distance from uniform "
            f"{d.ks_distance:.4f} (independent uniform values stay below "
            f"{1.358 / math.sqrt(n):.4f} with probability 0.95); mean {float(pit.mean()):.3f} "
            f"(uniform: 0.5), std {float(pit.std()):.3f} (0.289), outside [0.05, 0.95] "
            f"{tails:.3f} (0.1). A U shape means over-confidence, a hump under-confidence, "
            "a slope bias.\n",
            "![PIT histogram](pit.png)\n",
            "| nominal coverage | observed | gap |\n|---|---|---|",
            *(f"| {a:.1f} | {b:.3f} | {b - a:+.3f} |" for a, b in d.coverage_rows()),
            "\n![Coverage of central intervals](coverage.png)",
        ]
    losses = d.history["loss"]
    lines.append("\n## Meta-training\n")
    if losses:
        plotting.plot_loss_trace(losses, out / "loss.png")
        wall = float(d.history.get("wall_time_s", math.nan))
        lines += [
            f"{len(losses)} iterations in {wall:.1f} s; loss {losses[0]:.4g} at the first, "
            f"{losses[-1]:.4g} at the last.\n",
            "![Meta-training loss](loss.png)",
        ]
    else:
        lines.append("No meta-training iterations were recorded.")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
