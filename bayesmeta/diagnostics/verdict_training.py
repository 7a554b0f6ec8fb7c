"""The verdict's training findings: did meta-training converge, is the variational posterior usable.

Split from :mod:`bayesmeta.diagnostics.verdict`, which assembles the findings.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import torch
from torch import Tensor

from bayesmeta.diagnostics.findings import (
    _MIN_ITERATIONS,
    Finding,
    _iterations,
    _pct,
)
from bayesmeta.diagnostics.vi_quality import KHAT_GOOD, KHAT_USABLE
from bayesmeta.runs.config import RunConfig

__all__ = ["convergence_finding", "posterior_finding"]


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _window_se(a: list[float], b: list[float]) -> float:
    """Standard error of the difference of two windows' means."""
    return math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))


def convergence_finding(losses: list[float] | None, config: RunConfig | None) -> Finding:
    """Whether the meta-training loss fell, rose or flattened (first, middle, last 10%)."""
    topic = "Training convergence"
    if not losses:
        return Finding(topic, "missing", "no meta-training loss was recorded.")
    n = len(losses)
    if not all(math.isfinite(v) for v in losses):
        return Finding(
            topic,
            "problem",
            f"the loss is not finite at {sum(not math.isfinite(v) for v in losses)} of {n} "
            "iterations.",
            "lower `outer_lr`, set `max_grad_norm`, check the data for extreme values.",
        )
    if n < _MIN_ITERATIONS:
        return Finding(
            topic,
            "warning",
            f"only {n} meta-iterations: too few to judge convergence "
            f"(loss {_fmt(losses[0])} at the first, {_fmt(losses[-1])} at the last).",
            f"train longer: at least {_MIN_ITERATIONS} iterations.",
        )
    w = max(2, round(0.1 * n))
    start = (n - w) // 2
    first, mid, last = losses[:w], losses[start : start + w], losses[-w:]
    f, m, e = statistics.fmean(first), statistics.fmean(mid), statistics.fmean(last)
    scale = max(abs(f), abs(m), abs(e))
    tiny = 0.01 * scale  # changes below 1% of the loss's size are flat

    def clear(change: float, a: list[float], b: list[float]) -> bool:
        """Whether ``change`` (a difference of window means) exceeds their noise and 1%."""
        return change > max(2 * _window_se(a, b), tiny)

    means = (
        f"mean loss {_fmt(f)} over the first 10% of {n} iterations, {_fmt(m)} in the "
        f"middle, {_fmt(e)} over the last 10%"
    )
    unstable = "lower `outer_lr`" + ("" if config is None else f" (this run: {config.outer_lr:g})")
    unstable += ", set `max_grad_norm` to clip meta-gradients, and check the data scale."
    if clear(e - f, first, last):
        change = f" ({100 * (e - f) / abs(f):+.0f}%)" if f else ""
        return Finding(topic, "problem", f"the loss rose{change}: {means}.", unstable)
    if clear(e - m, mid, last):
        return Finding(
            topic, "problem", f"the loss rose again in the second half: {means}.", unstable
        )
    fall = f - e
    if clear(m - e, mid, last) and (m - e) >= 0.25 * fall:
        share = f"; the second half brought {100 * (m - e) / fall:.0f}% of the fall" * (fall > 0)
        return Finding(
            topic,
            "warning",
            f"not converged: the loss was still falling at the end ({means}{share}).",
            f"train longer{_iterations(config)}.",
        )
    if not clear(fall, first, last):
        return Finding(
            topic,
            "warning",
            f"the loss did not fall measurably: {means}; the change is within the noise "
            "of the trace.",
            f"train longer{_iterations(config)}; if a longer run stays flat, raise "
            "`outer_lr` or check that the tasks share structure to learn.",
        )
    return Finding(topic, "ok", f"converged: the loss fell and levelled off ({means}).")


def posterior_finding(
    khat: float | Sequence[float] | Tensor | None, learner: str | None
) -> Finding:
    """Whether the task posteriors' PSIS k-hat says the variational posterior is usable."""
    topic = "Variational posterior"
    raw = [] if khat is None else torch.as_tensor(khat, dtype=torch.float64).reshape(-1).tolist()
    values = [float(v) for v in raw if not math.isnan(v)]
    if not values:
        return Finding(
            topic,
            "missing",
            "the run folder holds no PSIS k-hat of the task posteriors.",
            "compute it with `bayesmeta.diagnostics.vi_quality(learner, posterior, "
            "support_x, support_y)` on held-out tasks (see Posterior diagnostics).",
        )
    k = statistics.median(values)
    said = f"PSIS k-hat {k:.2f}"
    if len(values) > 1:
        bad = sum(v > KHAT_USABLE for v in values) / len(values)
        said = (
            f"median PSIS k-hat {k:.2f} over {len(values)} tasks ({_pct(bad)} above {KHAT_USABLE})"
        )
    if k < KHAT_GOOD:
        return Finding(
            topic, "ok", f"good: {said}; q is close to the exact task posterior (k < 0.5)."
        )
    if k <= KHAT_USABLE:
        return Finding(
            topic,
            "warning",
            f"usable: {said}; q is a rough approximation of the task posterior (0.5-0.7).",
            "read its weight uncertainty with care; compare with a NUTS reference "
            "(`bayesmeta.diagnostics.reference_posterior`) on a small network.",
        )
    svi = (
        '; `learner = "variational"` fits each task by SVI, usually closer'
        if learner == "bayesian_maml"
        else ""
    )
    return Finding(
        topic,
        "problem",
        f"the variational posterior is not trustworthy: {said} (> {KHAT_USABLE}).",
        "compare with the NUTS reference (`bayesmeta.diagnostics.reference_posterior`, "
        "`compare_predictives`) on a small network; trust its intervals only as far as the "
        f"calibration finding supports{svi}.",
    )
