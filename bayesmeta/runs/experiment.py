"""Run a whole experiment: meta-train, fit the noise scale, evaluate, write a run folder.

The run is defined by a :class:`~bayesmeta.runs.config.RunConfig` (re-exported here).
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from bayesmeta.baselines.neighbours import NearestNeighbour
from bayesmeta.io.checkpoint import save_learner
from bayesmeta.learners.base import MetaLearner
from bayesmeta.learners.registry import run_learner
from bayesmeta.runs.config import RunConfig
from bayesmeta.runs.folder import CHECKPOINT, RunFolderError, new_run_dir, read_run_config
from bayesmeta.scoring.evaluation import Adaptable, Evaluation, evaluate
from bayesmeta.tasks.source import SeededSource
from bayesmeta.tasks.task import TaskBatch
from bayesmeta.training.loop import History
from bayesmeta.transfer.prior import TransferLearner

__all__ = [
    "BASELINE_ADVICE",
    "BASELINE_NAME",
    "EVAL_SEED",
    "NOISE_FIT_SEED",
    "QUICK_LIMITS",
    "RunConfig",
    "RunResult",
    "baseline_verdict",
    "compare_with_baseline",
    "evaluate_held_out",
    "format_table",
    "resume_run",
    "run_experiment",
    "score_baseline",
]


@dataclass
class RunResult:
    """What :func:`run_experiment` produced."""

    config: RunConfig
    learner: MetaLearner | TransferLearner
    history: History
    evaluation: Evaluation
    run_dir: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)
    #: Classification runs: a 1-nearest-neighbour on raw inputs, scored on the same tasks.
    baseline: Evaluation | None = None


# Fixed seeds of the held-out tasks: independent of the training seed.
NOISE_FIT_SEED = 1_000_003
EVAL_SEED = 2_000_003


def run_experiment(
    config: RunConfig | None = None,
    *,
    out_dir: str | Path | None = "runs",
    progress: bool | None = None,
) -> RunResult:
    """Meta-train, fit the noise scale on held-out tasks, evaluate, and save.

    Point-estimate learners on regression data (the MAML family) get a noise
    scale fitted on 200 tasks of their own seed, so that their predictions
    have intervals; Bayesian and classification learners predict with their
    own likelihood. A transfer run fits its prior instead of meta-training
    (see :mod:`bayesmeta.runs.transfer`).

    Parameters
    ----------
    config
        The run's settings (``None``: the defaults, MAML on 5-shot sinusoids).
    out_dir
        Parent folder of the run folder (``None``: write nothing).
    progress
        Progress bars (``None``: only on a terminal).

    Returns
    -------
    RunResult
        The learner, its history and the evaluation; ``run_dir`` is the
        folder (see :mod:`bayesmeta.runs.folder`) holding ``config.json``
        and ``checkpoint.safetensors`` from the start, and at the end
        ``history.json``, ``metrics.json``, ``model.safetensors`` and, with
        matplotlib, ``predictions.png`` (regression) or ``reliability.png``
        (classification).

    """
    config = RunConfig() if config is None else config
    # the data and the learner first, so that a bad setting or source fails before any file
    train, held_out = config.train_source(), config.held_out_tasks(EVAL_SEED)
    learner = config.build_learner()
    run_dir = None if out_dir is None else new_run_dir(config, out_dir)
    return _run(config, run_dir, progress, train, held_out, learner)


def resume_run(run_dir: str | Path, *, progress: bool | None = None) -> RunResult:
    """Finish an interrupted run from its folder's last training checkpoint.

    Meta-training continues from ``checkpoint.safetensors`` (the learner,
    its optimisers, the random states and the history), so the finished run
    equals one that was never interrupted; then the run is evaluated and its
    files written, as :func:`run_experiment` does.

    Parameters
    ----------
    run_dir
        A run folder whose run stopped before writing ``metrics.json``.
    progress
        Progress bars (``None``: only on a terminal).

    Raises
    ------
    RunFolderError
        If ``run_dir`` has no valid ``config.json`` or has already finished.
    ~bayesmeta.io.CheckpointError
        If the checkpoint is corrupted or was written by another learner.

    """
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    if (run_dir / "metrics.json").exists():
        raise RunFolderError(f"the run in {run_dir} has finished: it has a metrics.json")
    train, held_out = config.train_source(), config.held_out_tasks(EVAL_SEED)
    return _run(config, run_dir, progress, train, held_out, config.build_learner())


def _run(
    config: RunConfig,
    run_dir: Path | None,
    progress: bool | None,
    train: SeededSource,
    held_out: TaskBatch,
    learner: MetaLearner | TransferLearner,
) -> RunResult:
    """Meta-train ``learner`` on ``train`` (checkpointing into ``run_dir``), evaluate, write.

    ``held_out`` are the run's held-out tasks and ``learner`` is ``config.build_learner()``,
    made in this order (as the run's random state depends on it) before any file was written.
    """
    t0 = time.perf_counter()
    checkpoint = None if run_dir is None else run_dir / CHECKPOINT
    history = run_learner(config.learner).fit(  # each learner's own way, one call
        learner,
        config,
        train,
        progress=progress,
        checkpoint=checkpoint,
        checkpoint_every=config.checkpoint_every,
        seed=NOISE_FIT_SEED,
    )
    t1 = time.perf_counter()
    evaluation = evaluate_held_out(
        cast(Adaptable, learner), held_out, progress=progress, chunk_size=config.eval_chunk_size
    )
    t2 = time.perf_counter()
    result = RunResult(
        config, learner, history, evaluation, timings={"meta_fit_s": t1 - t0, "evaluate_s": t2 - t1}
    )
    if config.classification:
        result.baseline = score_baseline(train, held_out, chunk_size=config.eval_chunk_size)
    if run_dir is not None:
        _write_results(result, run_dir, held_out)
        result.run_dir = run_dir
    return result


def evaluate_held_out(
    learner: Adaptable,
    batch: TaskBatch,
    *,
    progress: bool | None = None,
    chunk_size: int = 100,
) -> Evaluation:
    """Score ``learner`` on a run's held-out tasks, with posterior sampling seeded.

    Sampling uses :data:`EVAL_SEED` inside a forked RNG, so that scoring the
    same learner on the same tasks again gives the same metrics, and the
    caller's random state is left as it was. ``progress`` and ``chunk_size``
    are as for :func:`~bayesmeta.scoring.evaluation.evaluate`; the draws depend on
    the chunks, so score a run again with its config's ``eval_chunk_size``. The
    run report reads its predictions from the same loop
    (:func:`~bayesmeta.scoring.chunks.predict_chunks`) with the same seed.
    """
    return evaluate(learner, batch, progress=progress, chunk_size=chunk_size, seed=EVAL_SEED)


#: The baseline's row name in tables and ``metrics.json``.
BASELINE_NAME = "1-NN (raw inputs)"


def score_baseline(
    train: SeededSource, held_out: TaskBatch, *, chunk_size: int = 100
) -> Evaluation:
    """A 1-nearest-neighbour on raw inputs, scored on a classification run's held-out tasks.

    Its softmax temperature (for NLL and ECE) is fitted on 200 episodes of the
    training classes, drawn with a fixed seed (the run's own random state is
    left as it was). If a meta-learner does not beat this, meta-learning is
    not paying on the data (see :mod:`bayesmeta.baselines`).
    """
    baseline = NearestNeighbour()
    baseline.fit_temperature(train, seed=NOISE_FIT_SEED)
    return evaluate(baseline, held_out, progress=False, chunk_size=chunk_size, seed=EVAL_SEED)


#: What to try when a meta-learner does not beat :data:`BASELINE_NAME`.
BASELINE_ADVICE = (
    "more training classes (rotations as new classes: bayesmeta.tasks.augment_classes), "
    "meta-training on a larger related source (bayesmeta.tasks.cross_domain_episodes), "
    "or a pre-trained encoder (docs/baselines.md)"
)


def compare_with_baseline(learner: str, ours: float, theirs: float) -> str:
    """A plain sentence saying whether ``learner``'s accuracy beats the baseline's.

    Parameters
    ----------
    learner
        The learner's name, as the sentence should say it.
    ours, theirs
        Mean held-out accuracy of the learner and of :data:`BASELINE_NAME` on the same tasks.

    Returns
    -------
    str
        ``"... beats a 1-NN ..."`` when ``ours > theirs``; otherwise a sentence with
        ``"does NOT beat"`` and :data:`BASELINE_ADVICE`.

    """
    if ours > theirs:
        return (
            f"{learner} beats a {BASELINE_NAME} on the same tasks "
            f"(accuracy {ours:.3f} against {theirs:.3f})."
        )
    return (
        f"{learner} does NOT beat a {BASELINE_NAME} on the same tasks "
        f"(accuracy {ours:.3f} against {theirs:.3f}): meta-learning is not paying here. "
        f"Try {BASELINE_ADVICE}."
    )


def baseline_verdict(result: RunResult) -> str | None:
    """:func:`compare_with_baseline` for a finished run (``None`` without a baseline)."""
    if result.baseline is None:
        return None
    ours, _ = result.evaluation.summary()["accuracy"]
    theirs, _ = result.baseline.summary()["accuracy"]
    return compare_with_baseline(result.config.learner, ours, theirs)


def _write_results(result: RunResult, run_dir: Path, held_out: TaskBatch) -> None:
    """Write a finished run's history, metrics, learner and figures into ``run_dir``.

    ``held_out`` is the evaluated batch; the predictions figure shows its first six tasks.
    """
    cfg = result.config
    (run_dir / "history.json").write_text(json.dumps(result.history.to_dict()) + "\n")
    metrics = {
        "num_tasks": result.evaluation.num_tasks,
        "metrics": result.evaluation.to_dict(),
        "noise_scale": _noise_scale(result.learner),
        "timings": result.timings,
    }
    if result.baseline is not None:
        metrics["baseline"] = {"name": BASELINE_NAME, "metrics": result.baseline.to_dict()}
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    save_learner(result.learner, run_dir / "model.safetensors")
    try:
        from bayesmeta.scoring.plotting import plot_predictions, plot_reliability
    except ImportError:  # matplotlib is optional
        return
    if result.evaluation.reliability is not None:
        plot_reliability(result.evaluation.reliability, run_dir / "reliability.png")
    elif not cfg.classification and (cfg.data != "table" or len(cfg.x) == 1):  # 1-D inputs
        batch = held_out.select(slice(0, 6))
        plot_predictions(cast(Adaptable, result.learner), batch, run_dir / "predictions.png")


def _noise_scale(learner: MetaLearner | TransferLearner) -> list[float] | None:
    """The noise scale its predictions use (fitted, calibrated or meta-learned), if any."""
    scale = learner.predictive_noise()
    return None if scale is None else [float(v) for v in scale.reshape(-1)]


def format_table(rows: dict[str, dict[str, tuple[float, float]]], *, title: str = "") -> str:
    """Format ``{row: {metric: (mean, ci)}}`` as an aligned text table."""
    metrics: list[str] = []
    for values in rows.values():
        metrics.extend(m for m in values if m not in metrics)
    header = ["", *metrics]
    lines = [
        [name, *(f"{v[m][0]:.4f} ± {v[m][1]:.4f}" if m in v else "-" for m in metrics)]
        for name, v in rows.items()
    ]
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    out = [title] if title else []
    out.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    out.append("  ".join("-" * w for w in widths))
    out.extend("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in lines)
    return "\n".join(out)


#: What :func:`quick` keeps at most: meta-iterations and held-out tasks, and on image data
#: fewer of both and of the tasks per meta-iteration. A second-order Conv4 meta-iteration of
#: 4 tasks of 5-shot 28x28 glyphs with 5 inner steps took ~4 s on one busy core. On image
#: data, settings the run left unset are capped too: query images per class in
#: meta-training and in evaluation (each query image is one network pass per weight draw:
#: Bayesian MAML predicts with 100), and test-time adaptation steps (the SVI learners' 300
#: steps per held-out chunk took most of a quick variational run on glyphs).
QUICK_LIMITS = {
    "iterations": 50,
    "eval_tasks": 50,
    "image_iterations": 20,
    "image_eval_tasks": 20,
    "image_meta_batch_size": 2,
    "image_k_query": 5,
    "image_eval_k_query": 5,
    "image_adapt_steps": 50,
}


def quick(config: RunConfig, *, explicit: Collection[str] | None = None) -> RunConfig:
    """A variant of ``config`` of a minute or less for smoke tests and CI: the same pipeline.

    At most 50 meta-iterations and 50 held-out tasks; on image data at most 20 of each
    and 2 tasks per meta-iteration (see :data:`QUICK_LIMITS`). On image data, settings
    that were not given are capped too: 5 query images per class in meta-training
    (``k_query``) and in evaluation (``eval_k_query``), and at most 50 test-time
    adaptation steps (``adapt_steps``: the SVI learners' default of 300; the gradient
    learners' 10 stay). Everything else (the network, the inner loop, the data,
    evaluation and the baseline) is the config's own.

    Parameters
    ----------
    config
        The run.
    explicit
        The settings the user gave (a config file's and the command line's keys): the
        caps on unset settings leave them as given. ``None``: unknown, so only
        ``k_query`` and ``eval_k_query`` left at ``None`` count as unset, and
        ``adapt_steps`` (filled from the learner's default when the config is made) is
        kept.

    """
    image = "image_" if config.classification else ""
    limits = QUICK_LIMITS
    batch = config.meta_batch_size
    changes: dict[str, Any] = {}
    if config.classification:
        batch = min(batch, limits["image_meta_batch_size"])
        given = set(explicit or ())
        for key in ("k_query", "eval_k_query"):
            if getattr(config, key) is None and key not in given:
                changes[key] = limits[f"image_{key}"]
        steps = config.adapt_steps
        if explicit is not None and "adapt_steps" not in given and steps is not None:
            changes["adapt_steps"] = min(steps, limits["image_adapt_steps"])
    return replace(
        config,
        iterations=min(config.meta_iterations, limits[image + "iterations"]),
        eval_tasks=min(config.eval_tasks, limits[image + "eval_tasks"]),
        meta_batch_size=batch,
        **changes,
    )
