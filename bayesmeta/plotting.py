"""Figures (needs matplotlib: ``pip install bayesmeta[plot]``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from bayesmeta.evaluation import Adaptable
from bayesmeta.prediction import Prediction
from bayesmeta.reliability import Reliability
from bayesmeta.tasks.task import TaskBatch

__all__ = ["plot_predictions", "plot_reliability"]


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
    band = pred.interval(level) if pred.noise_scale is not None or pred.num_samples > 1 else None
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
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_reliability(
    reliabilities: Reliability | dict[str, Reliability], path: str | Path, *, title: str = ""
) -> Path:
    """Draw reliability diagrams: accuracy against confidence per bin, beside the diagonal.

    Parameters
    ----------
    reliabilities
        One :class:`~bayesmeta.metrics.Reliability` (from
        :func:`~bayesmeta.metrics.reliability` or ``Evaluation.reliability``)
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
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
