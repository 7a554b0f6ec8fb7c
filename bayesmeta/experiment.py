"""Run a whole experiment: meta-train, fit the noise scale, evaluate, write a run folder."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch

from bayesmeta.evaluation import Evaluation, evaluate
from bayesmeta.io.checkpoint import save_learner
from bayesmeta.learners.bayesian_maml import BayesianMAML
from bayesmeta.learners.gradient import GradientMetaLearner
from bayesmeta.learners.maml import MAML
from bayesmeta.learners.reptile import Reptile
from bayesmeta.learners.training import History
from bayesmeta.tasks.regression import Sinusoid, SinusoidOrLine
from bayesmeta.tasks.source import SeededSource, check_count

__all__ = ["RunConfig", "RunResult", "format_table", "run_experiment"]

LearnerName = Literal["maml", "fomaml", "reptile", "bayesian_maml"]
DataName = Literal["sinusoid", "sinusoid_or_line"]
RunLearner = GradientMetaLearner | BayesianMAML


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run; the defaults are the built-in sinusoid job.

    Attributes
    ----------
    learner : {"maml", "fomaml", "reptile", "bayesian_maml"}
        Which learner to meta-train.
    data : {"sinusoid", "sinusoid_or_line"}
        The built-in task family.
    shots : int
        Support points per task ``K``.
    query : int
        Query points per meta-training task.
    eval_query : int
        Query points per held-out evaluation task.
    eval_tasks : int
        Number of held-out tasks scored.
    iterations, meta_batch_size : int
        Meta-training length and tasks per meta-iteration.
    hidden : tuple of int
        Hidden widths of the MLP.
    inner_lr, inner_steps, eval_inner_steps, outer_lr, learn_inner_lr
        Learner settings (see :class:`~bayesmeta.MAML`); by default 5 inner
        steps in meta-training and 10 at test time (more test-time steps
        lowered the held-out MSE in every run we made).
    max_grad_norm : float or None
        Meta-gradient clipping.
    seed : int
        Seeds the weights and the training tasks; held-out tasks use their own
        fixed seeds, so that runs with different seeds are scored on the same
        tasks.

    """

    learner: LearnerName = "maml"
    data: DataName = "sinusoid"
    shots: int = 5
    query: int = 10
    eval_query: int = 100
    eval_tasks: int = 600
    iterations: int = 10000
    meta_batch_size: int = 25
    hidden: tuple[int, ...] = (40, 40)
    inner_lr: float = 0.01
    inner_steps: int = 5
    eval_inner_steps: int | None = 10
    outer_lr: float = 1e-3
    learn_inner_lr: bool = False
    max_grad_norm: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.learner not in ("maml", "fomaml", "reptile", "bayesian_maml"):
            raise ValueError(
                "learner must be 'maml', 'fomaml', 'reptile' or 'bayesian_maml', "
                f"got {self.learner!r}"
            )
        if self.data not in ("sinusoid", "sinusoid_or_line"):
            raise ValueError(f"data must be 'sinusoid' or 'sinusoid_or_line', got {self.data!r}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        check_count("shots", self.shots, minimum=1)
        check_count("query", self.query, minimum=1)
        check_count("eval_query", self.eval_query, minimum=1)
        check_count("eval_tasks", self.eval_tasks, minimum=1)
        check_count("iterations", self.iterations, minimum=0)
        check_count("meta_batch_size", self.meta_batch_size, minimum=1)
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden widths must be >= 1, got {self.hidden}")

    def source(self, *, seed: int, k_query: int) -> SeededSource:
        """The task family with this run's shots."""
        cls = Sinusoid if self.data == "sinusoid" else SinusoidOrLine
        return cls(self.shots, k_query, seed=seed)

    def build_learner(self) -> RunLearner:
        """A fresh learner for this config (weights seeded by ``seed``)."""
        torch.manual_seed(self.seed)
        sizes = (1, *self.hidden, 1)
        common: dict[str, Any] = {
            "inner_lr": self.inner_lr,
            "inner_steps": self.inner_steps,
            "eval_inner_steps": self.eval_inner_steps,
            "outer_lr": self.outer_lr,
            "max_grad_norm": self.max_grad_norm,
        }
        if self.learner == "reptile":
            return Reptile(sizes, **common)
        if self.learner == "bayesian_maml":
            return BayesianMAML(sizes, **common)
        return MAML(
            sizes,
            first_order=self.learner == "fomaml",
            learn_inner_lr=self.learn_inner_lr,
            **common,
        )


@dataclass
class RunResult:
    """What :func:`run_experiment` produced."""

    config: RunConfig
    learner: RunLearner
    history: History
    evaluation: Evaluation
    run_dir: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)


# Fixed seeds of the held-out tasks: independent of the training seed.
NOISE_FIT_SEED = 1_000_003
EVAL_SEED = 2_000_003


def run_experiment(
    config: RunConfig = RunConfig(),
    *,
    out_dir: str | Path | None = "runs",
    progress: bool | None = None,
) -> RunResult:
    """Meta-train, fit the noise scale on held-out tasks, evaluate, and save.

    Parameters
    ----------
    config
        The run's settings.
    out_dir
        Parent folder of the run folder (``None``: write nothing).
    progress
        Progress bars (``None``: only on a terminal).

    Returns
    -------
    RunResult
        The learner, its history and the evaluation; ``run_dir`` is the
        folder holding ``config.json``, ``history.json``, ``metrics.json``,
        ``model.safetensors`` and, with matplotlib, ``predictions.png``.

    """
    learner = config.build_learner()
    train = config.source(seed=config.seed, k_query=config.query)
    t0 = time.perf_counter()
    history = learner.meta_fit(train, config.iterations, config.meta_batch_size, progress=progress)
    t1 = time.perf_counter()
    if isinstance(learner, GradientMetaLearner):  # point estimates: fit a noise scale
        learner.fit_noise_scale(
            config.source(seed=NOISE_FIT_SEED, k_query=config.eval_query).sample(200)
        )
    evaluation = evaluate(
        learner, config.source(seed=EVAL_SEED, k_query=config.eval_query), config.eval_tasks
    )
    t2 = time.perf_counter()
    result = RunResult(
        config, learner, history, evaluation, timings={"meta_fit_s": t1 - t0, "evaluate_s": t2 - t1}
    )
    if out_dir is not None:
        result.run_dir = _write_run(result, Path(out_dir))
    return result


def _write_run(result: RunResult, out_dir: Path) -> Path:
    cfg = result.config
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = out_dir / f"{stamp}-{cfg.learner}-{cfg.data}-{cfg.shots}shot"
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = out_dir / f"{stamp}-{cfg.learner}-{cfg.data}-{cfg.shots}shot-{suffix}"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    (run_dir / "history.json").write_text(json.dumps(result.history.to_dict()) + "\n")
    metrics = {
        "num_tasks": result.evaluation.num_tasks,
        "metrics": result.evaluation.to_dict(),
        "noise_scale": _noise_scale(result.learner),
        "timings": result.timings,
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    save_learner(result.learner, run_dir / "model.safetensors")
    try:
        from bayesmeta.plotting import plot_predictions
    except ImportError:  # matplotlib is optional
        return run_dir
    batch = cfg.source(seed=EVAL_SEED, k_query=cfg.eval_query).sample(6)
    plot_predictions(result.learner, batch, run_dir / "predictions.png")
    return run_dir


def _noise_scale(learner: RunLearner) -> list[float] | None:
    """The noise scale its predictions use (fitted or meta-learned), if any."""
    if isinstance(learner, GradientMetaLearner):
        return [float(v) for v in learner.noise_scale.reshape(-1)]
    scale = learner.likelihood.noise_scale()
    return None if scale is None else [float(v) for v in scale.detach().reshape(-1)]


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


def quick(config: RunConfig) -> RunConfig:
    """A seconds-long variant of ``config`` for smoke tests and CI."""
    return replace(
        config, iterations=min(config.iterations, 50), eval_tasks=min(config.eval_tasks, 50)
    )
