"""Figures (needs matplotlib: ``pip install bayesmeta[plot]``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import Tensor

from bayesmeta.predictions.prediction import Prediction
from bayesmeta.scoring.evaluation import Adaptable
from bayesmeta.scoring.reliability import Reliability
from bayesmeta.tasks.task import TaskBatch

__all__ = [
    "plot_coverage_curve",
    "plot_loss_trace",
    "plot_pit_histogram",
    "plot_predictions",
    "plot_reliability",
]


def _save(fig: Figure, path: str | Path) -> Path:
    """Lay out ``fig``, write it to ``path`` as an image (PNG by suffix), close it."""
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_predictions(
    learner: Adaptable, batch: TaskBatch, path: str | Path, *, level: float = 0.9, grid: int = 200
) -> Path:
    """Plot the adapted predictions for each task of a 1-D regression batch.

    Each panel shows the support points, the query points, the predictive
    mean on a grid over the inputs' range and, when the predictions have a
    noise model, the central ``level`` interval.

    Returns
    -------
    Path
        The written PNG.

    """
    if batch.support_x.shape[-1] != 1 or batch.kind != "regression":
        raise ValueError("plot_predictions draws 1-D regression tasks only")
    t = len(batch)
    x_all = torch.cat([batch.support_x, batch.query_x], 1)
    lo, hi = float(x_all.min()), float(x_all.max())
    xs = (
        torch.linspace(lo, hi, grid, dtype=batch.support_x.dtype)
        .reshape(1, grid, 1)
        .expand(t, grid, 1)
    )
    pred = learner.adapt(batch.support_x, batch.support_y).predict(xs)
    if not isinstance(pred, Prediction):
        raise TypeError("the learner returned class predictions for a regression batch")
    cols = min(t, 3)
    rows = (t + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    mean = pred.mean.detach().cpu()
    band = pred.interval(level) if pred.has_noise_model or pred.num_samples > 1 else None
    g = xs[0, :, 0].cpu()
    for i in range(rows * cols):
        ax = axes[i // cols][i % cols]
        if i >= t:
            ax.axis("off")
            continue
        if band is not None:
            ax.fill_between(
                g,
                band[0][i, :, 0].cpu(),
                band[1][i, :, 0].cpu(),
                alpha=0.25,
                label=f"{round(level * 100)}% interval",
            )
        ax.plot(g, mean[i, :, 0], label="predictive mean")
        ax.scatter(
            batch.query_x[i, :, 0].cpu(), batch.query_y[i, :, 0].cpu(), s=6, c="gray", label="query"
        )
        ax.scatter(
            batch.support_x[i, :, 0].cpu(),
            batch.support_y[i, :, 0].cpu(),
            s=25,
            c="red",
            label="support",
        )
        ax.set_title(f"task {i}")
    axes[0][0].legend(fontsize=7)
    return _save(fig, path)


def plot_reliability(
    reliabilities: Reliability | dict[str, Reliability], path: str | Path, *, title: str = ""
) -> Path:
    """Draw reliability diagrams: accuracy against confidence per bin, beside the diagonal.

    Parameters
    ----------
    reliabilities
        One :class:`~bayesmeta.scoring.metrics.Reliability` (from
        :func:`~bayesmeta.scoring.metrics.reliability` or ``Evaluation.reliability``)
        or several by name, drawn side by side.
    path
        Where to write the PNG.
    title
        Figure title.

    Returns
    -------
    Path
        The written PNG.

    """
    named = reliabilities if isinstance(reliabilities, dict) else {"": reliabilities}
    if not named:
        raise ValueError("nothing to plot: reliabilities is empty")
    fig, axes = plt.subplots(1, len(named), figsize=(3.6 * len(named), 3.6), squeeze=False)
    for ax, (name, rel) in zip(axes[0], named.items(), strict=True):
        edges = rel.edges.tolist()
        width = torch.diff(rel.edges).tolist()
        full = rel.count > 0
        ax.bar(
            edges[:-1],
            torch.where(full, rel.accuracy, 0.0).tolist(),
            width=width,
            align="edge",
            edgecolor="black",
            alpha=0.7,
            label="accuracy",
        )
        ax.plot([0, 1], [0, 1], "--", color="gray", label="calibrated")
        centres = rel.confidence[full].tolist()
        ax.scatter(centres, rel.accuracy[full].tolist(), s=8, color="red", zorder=3)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{name} ECE {rel.ece:.3f}".strip())
    axes[0][0].legend(fontsize=7, loc="upper left")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def _binomial_band(n: int, p: float, level: float = 0.95) -> tuple[int, int]:
    """Central ``level`` interval of a ``Binomial(n, p)`` count (exact quantiles)."""
    k = torch.arange(n + 1, dtype=torch.float64)
    log_pmf = (
        math.lgamma(n + 1)
        - torch.lgamma(k + 1)
        - torch.lgamma(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )
    cdf = torch.cumsum(log_pmf.exp(), 0)
    tail = 0.5 * (1.0 - level)
    lo = int(torch.searchsorted(cdf, torch.tensor([tail], dtype=torch.float64)))
    hi = int(torch.searchsorted(cdf, torch.tensor([1.0 - tail], dtype=torch.float64)))
    return lo, min(hi, n)


def plot_pit_histogram(
    pit: Tensor, path: str | Path, *, bins: int = 20, title: str | None = None
) -> Path:
    """Histogram of PIT values beside the uniform density of a calibrated prediction.

    The shaded band is where each bin's height falls with probability 0.95
    (pointwise, exact binomial quantiles) if the values are uniform: bars
    outside it on both edges (U shape) mean over-confidence, a hump in the
    middle under-confidence, a slope bias.

    Parameters
    ----------
    pit
        PIT values in ``[0, 1]``, any shape (pooled), e.g. from
        :func:`~bayesmeta.scoring.calibration.pit_values`.
    path
        Where to write the PNG.
    bins
        Number of equal-width bins on ``[0, 1]``.
    title
        Figure title.

    Returns
    -------
    Path
        The written PNG.

    """
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be an int >= 1, got {bins!r}")
    if not isinstance(pit, Tensor):
        raise TypeError(f"pit must be a torch.Tensor, got {type(pit).__name__}")
    u = pit.detach().reshape(-1).double().cpu()
    if u.numel() == 0:
        raise ValueError("nothing to plot: pit is empty")
    if not bool(((u >= 0) & (u <= 1)).all()):
        raise ValueError("pit values must lie in [0, 1] (and not be NaN)")
    n = u.numel()
    density = torch.histc(u, bins, 0.0, 1.0) * bins / n
    lo, hi = _binomial_band(n, 1.0 / bins)
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    ax.axhspan(lo * bins / n, hi * bins / n, color="gray", alpha=0.2, label="95% band if uniform")
    ax.bar(
        torch.linspace(0.0, 1.0, bins + 1)[:-1].tolist(),
        density.tolist(),
        width=1.0 / bins,
        align="edge",
        edgecolor="black",
        alpha=0.7,
        label=f"PIT ({n} values)",
    )
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1, label="uniform")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, max(float(density.max()), hi * bins / n) * 1.3)  # room for the legend
    ax.set_xlabel("predictive CDF at the target, F(y)")
    ax.set_ylabel("density")
    ax.legend(fontsize=7, loc="upper center", ncol=3)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_coverage_curve(
    levels: Tensor | Sequence[float],
    observed: Tensor | Sequence[float],
    path: str | Path,
    *,
    labels: Sequence[str] | None = None,
) -> Path:
    """Observed against nominal coverage of central intervals, beside the diagonal.

    Parameters
    ----------
    levels
        Nominal levels ``[L]``, e.g. from :func:`~bayesmeta.scoring.calibration.coverage_curve`.
    observed
        Observed coverage ``[L]``, or ``[R, L]`` for ``R`` curves drawn together.
    path
        Where to write the PNG.
    labels
        One legend entry per curve (``R`` names).

    Returns
    -------
    Path
        The written PNG.

    """
    lv = torch.as_tensor(levels, dtype=torch.float64).detach().cpu()
    obs = torch.as_tensor(observed, dtype=torch.float64).detach().cpu()
    if lv.dim() != 1 or lv.numel() == 0:
        raise ValueError(f"levels must be a non-empty 1-D sequence, got shape {tuple(lv.shape)}")
    curves = obs.unsqueeze(0) if obs.dim() == 1 else obs
    if curves.dim() != 2 or curves.shape[-1] != lv.numel():
        raise ValueError(
            f"observed must have shape [L] or [R, L] with L = {lv.numel()} levels, "
            f"got {tuple(obs.shape)}"
        )
    if labels is not None and len(labels) != curves.shape[0]:
        raise ValueError(f"labels must name the {curves.shape[0]} curve(s), got {len(labels)}")
    fig, ax = plt.subplots(figsize=(3.8, 3.6))
    ax.plot([0, 1], [0, 1], "--", color="gray", label="calibrated")
    for i, curve in enumerate(curves):
        name = labels[i] if labels is not None else "observed"
        ax.plot(lv.tolist(), curve.tolist(), marker="o", markersize=3, label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("nominal coverage of the central interval")
    ax.set_ylabel("observed coverage")
    ax.legend(fontsize=7, loc="upper left")
    return _save(fig, path)


def plot_loss_trace(
    losses: Sequence[float] | Tensor,
    path: str | Path,
    *,
    window: int | None = None,
    ylabel: str = "meta-training loss",
) -> Path:
    """The loss of every meta-iteration and its moving average.

    Parameters
    ----------
    losses
        One value per iteration (``History.loss``; a negative ELBO for the
        variational learners).
    path
        Where to write the PNG.
    window
        Iterations in the moving average (default: a tenth of the trace, at
        most 200).
    ylabel
        Label of the vertical axis.

    Returns
    -------
    Path
        The written PNG. The vertical axis is logarithmic when every loss is
        positive and they span more than two decades.

    """
    y = torch.as_tensor(losses, dtype=torch.float64).detach().reshape(-1).cpu()
    if y.numel() == 0:
        raise ValueError("nothing to plot: losses is empty")
    if not bool(torch.isfinite(y).all()):
        raise ValueError("losses must be finite")
    n = y.numel()
    w = max(1, min(200, n // 10)) if window is None else window
    if isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= n:
        raise ValueError(f"window must be an int in [1, {n}], got {window!r}")
    csum = torch.cat([torch.zeros(1, dtype=y.dtype), torch.cumsum(y, 0)])
    smooth = (csum[w:] - csum[:-w]) / w
    steps = torch.arange(1, n + 1)
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    ax.plot(steps.tolist(), y.tolist(), alpha=0.35, linewidth=0.8, label="per iteration")
    ax.plot(steps[w - 1 :].tolist(), smooth.tolist(), linewidth=1.5, label=f"mean of {w}")
    if bool((y > 0).all()) and float(y.max() / y.min()) > 100:
        ax.set_yscale("log")
    ax.set_xlabel("meta-iteration")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    return _save(fig, path)
