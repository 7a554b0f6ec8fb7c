"""Importance weights for source points from a domain classifier (instance-based transfer).

Valid under *covariate shift*: ``p(y | x)`` is shared by the source and target
domains and only the input density moves from ``p_s(x)`` to ``p_t(x)``. Then
``E_t[loss(x, y)] = E_s[w(x) loss(x, y)]`` with ``w(x) = p_t(x) / p_s(x)``, so
fitting on source data weighted by ``w`` targets the target-domain risk
(Shimodaira, 2000). If ``p(y | x)`` changes too, the weights fix only the input
mismatch; and they need ``p_s(x) > 0`` wherever the target has mass.

No density is estimated: a classifier learns to tell target inputs (label 1)
from source inputs (label 0), and its logit is ``log p_t(x) / p_s(x) + log n_t /
n_s``. Weighting each domain's points by ``1 / n_domain`` (a class-balanced
loss) removes the prior term, so the logit estimates the log ratio itself. The
log ratio of two Gaussians is quadratic in ``x``: ``features="quadratic"`` is
exact for Gaussian shifts, ``"linear"`` when only the mean moves.

Weighting trades bias for variance. The Kish effective sample size
``(sum w)^2 / sum w^2`` says how many equally weighted source points remain:
near ``N_s`` for mild shifts, small when the target sits where the source has few
points. Clipping the largest weights bounds the variance at the price of bias.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor
from torch.nn.functional import softplus

from bayesmeta._checks import check_tensor, fmt_shape
from bayesmeta.errors import NonFiniteLossError, ShapeError

__all__ = ["DensityRatio", "density_ratio"]


@dataclass(frozen=True, eq=False)
class DensityRatio:
    """Estimated ratio ``p_t(x) / p_s(x)`` and the importance weights of the source points.

    Attributes
    ----------
    weights
        ``[Ns]`` importance weights of the source points, mean 1 (clipped, see
        :func:`density_ratio`).
    log_weights
        ``[Ns]`` unnormalised, unclipped estimates of ``log p_t(x) / p_s(x)``.
    classifier_accuracy
        Balanced accuracy of the domain classifier on the points it was fitted
        to: about 0.5 when the domains overlap fully, near 1 when they barely do.
    effective_sample_size
        Kish ESS ``(sum w)^2 / sum w^2`` of ``weights``, in ``[1, Ns]``.

    """

    weights: Tensor
    log_weights: Tensor
    classifier_accuracy: float
    effective_sample_size: float
    _logit: Callable[[Tensor], Tensor] = field(repr=False)
    _log_norm: float = field(repr=False)
    _clip: float | None = field(repr=False)
    _feature_shape: tuple[int, ...] = field(repr=False)

    def __call__(self, x: Tensor) -> Tensor:
        """Weights at new inputs ``x`` ``[M, *features]`` -> ``[M]``.

        Uses the same standardisation, classifier, normalising constant and clip
        as :attr:`weights`, so calling it on the source points reproduces them.
        """
        x = _points("x", x, allow_empty=True)
        if tuple(x.shape[1:]) != self._feature_shape:
            raise ShapeError(
                f"x must have shape [M, {', '.join(map(str, self._feature_shape))}] like the "
                f"source points, got {fmt_shape(x.shape)}"
            )
        with torch.no_grad():
            w = (self._logit(x) - self._log_norm).exp()
            return w if self._clip is None else w.clamp(max=self._clip)


def density_ratio(
    source_x: Tensor,
    target_x: Tensor,
    *,
    features: Literal["linear", "quadratic"] = "quadratic",
    hidden: int | None = None,
    l2: float = 1e-3,
    steps: int = 500,
    clip: float | None = 20.0,
    generator: torch.Generator | None = None,
) -> DensityRatio:
    """Estimate ``w(x) = p_t(x) / p_s(x)`` with a class-balanced domain classifier.

    Parameters
    ----------
    source_x
        Source inputs ``[Ns, *features]``.
    target_x
        Target inputs ``[Nt, *features]`` (no labels needed).
    features
        Logistic regression on the standardised inputs ``z`` (``"linear"``) or on
        ``z`` and all products ``z_i z_j`` with ``i <= j`` (``"quadratic"``).
        Ignored when ``hidden`` is given.
    hidden
        If given, a one-hidden-layer tanh network with ``hidden`` units is the
        classifier instead, fitted with Adam.
    l2
        Penalty ``l2 * ||W||^2`` on the classifier weights (not biases); > 0.
    steps
        Iterations of L-BFGS (logistic models) or Adam (network).
    clip
        Cap on the weights as a multiple of their mean: the weights are capped
        at a common threshold chosen so that, after renormalising to mean 1, no
        weight exceeds ``clip``. Bounds the variance of weighted estimates (at
        the cost of some bias); ``None`` leaves the weights unclipped. > 1.
    generator
        Seeds the network's initial weights (logistic models start at zero).

    Returns
    -------
    DensityRatio
        The weights of the source points and the fitted ratio as a callable.

    Raises
    ------
    ShapeError
        If the inputs are not floating ``[N, *features]`` with one feature shape.
    ValueError
        If a set is empty or holds NaN, or an option is out of range.
    NonFiniteLossError
        If the classifier's loss becomes NaN or infinite.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> xs, xt = torch.randn(500, 2, generator=g), torch.randn(300, 2, generator=g) + 0.5
    >>> dr = density_ratio(xs, xt)
    >>> dr.weights.shape, round(float(dr.weights.mean()), 4)
    (torch.Size([500]), 1.0)

    """
    if features not in ("linear", "quadratic"):
        raise ValueError(f"features must be 'linear' or 'quadratic', got {features!r}")
    if hidden is not None and (type(hidden) is not int or hidden < 1):
        raise ValueError(f"hidden must be None or a positive int, got {hidden!r}")
    if not (isinstance(l2, int | float) and math.isfinite(l2) and l2 > 0):
        raise ValueError(f"l2 must be a positive finite float, got {l2!r}; try 1e-3")
    if type(steps) is not int or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if clip is not None and not (isinstance(clip, int | float) and 1 < clip < math.inf):
        raise ValueError(f"clip must be None or a float > 1, got {clip!r}; try 20.0")
    xs = _points("source_x", source_x, allow_empty=False)
    xt = _points("target_x", target_x, allow_empty=False)
    if xs.shape[1:] != xt.shape[1:]:
        raise ShapeError(
            f"source_x {fmt_shape(xs.shape)} and target_x {fmt_shape(xt.shape)} must have the "
            "same feature shape after the first (point) dimension"
        )
    if xs.device != xt.device:
        raise ValueError(f"source_x is on {xs.device} but target_x is on {xt.device}")
    dtype = torch.promote_types(xs.dtype, xt.dtype)
    ns = xs.shape[0]
    xs, xt = xs.reshape(ns, -1).to(dtype), xt.reshape(xt.shape[0], -1).to(dtype)
    std, mean = torch.std_mean(torch.cat([xs, xt]), 0, correction=0)
    std = torch.where(std > 1e-12 * (1.0 + mean.abs()), std, torch.ones_like(std))
    d = xs.shape[1]
    iu = torch.triu_indices(d, d, device=xs.device)

    def featurise(x: Tensor) -> Tensor:
        z = (x - mean) / std
        if hidden is not None or features == "linear":
            return z
        return torch.cat([z, z[:, iu[0]] * z[:, iu[1]]], dim=1)

    fs, ft = featurise(xs), featurise(xt)
    params, forward = _init_classifier(fs.shape[1], hidden, fs, generator)

    def objective() -> Tensor:
        # Labels: source 0, target 1; softplus(l) = -log(1 - sigmoid(l)).
        loss = 0.5 * (softplus(forward(fs)).mean() + softplus(-forward(ft)).mean())
        loss = loss + l2 * torch.stack([p.pow(2).sum() for p in params[::2]]).sum()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"the domain classifier's loss became {value}; parameters were not updated "
                "with it. Check the inputs for extreme values or raise l2"
            )
        return loss

    _fit(params, objective, hidden is not None, steps)
    with torch.no_grad():
        ls, lt = forward(fs), forward(ft)
        accuracy = 0.5 * (float((ls < 0).double().mean()) + float((lt > 0).double().mean()))
        log_norm = float(torch.logsumexp(ls, 0)) - math.log(ns)
        w = (ls - log_norm).exp()
        if clip is not None:
            cap = _cap(w, clip)
            w = w.clamp(max=cap)
            log_norm += math.log(cap / clip)
            w = w * (clip / cap)
        ess = float(w.sum().pow(2) / w.pow(2).sum())

    def logit(x: Tensor) -> Tensor:
        return forward(featurise(x.reshape(x.shape[0], -1).to(dtype)))

    return DensityRatio(
        weights=w,
        log_weights=ls,
        classifier_accuracy=accuracy,
        effective_sample_size=min(max(ess, 1.0), float(ns)),
        _logit=logit,
        _log_norm=log_norm,
        _clip=None if clip is None else float(clip),
        _feature_shape=tuple(source_x.shape[1:]),
    )


def _points(name: str, x: object, *, allow_empty: bool) -> Tensor:
    """Check that ``x`` is a finite floating tensor ``[N, *features]``."""
    t = check_tensor(name, x)
    if t.dim() < 2 or not t.is_floating_point():
        raise ShapeError(
            f"{name} must be a floating tensor [N, *features], got {t.dtype} "
            f"{fmt_shape(t.shape)}; reshape a 1-D input to [N, 1]"
        )
    if t.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} holds no points (shape {fmt_shape(t.shape)}); need N >= 1")
    return t


def _init_classifier(
    f: int, hidden: int | None, like: Tensor, generator: torch.Generator | None
) -> tuple[list[Tensor], Callable[[Tensor], Tensor]]:
    """Parameters ``[W, b, ...]`` (weights at even positions) and the logit ``[N, F] -> [N]``."""
    if hidden is None:
        w, b = like.new_zeros(f), like.new_zeros(())
        params = [w.requires_grad_(), b.requires_grad_()]
        return params, lambda z: z @ params[0] + params[1]
    g = torch.randn(f * hidden + hidden, generator=generator, dtype=like.dtype)
    w1 = (g[: f * hidden].reshape(f, hidden) / math.sqrt(f)).to(like.device)
    w2 = (g[f * hidden :] / math.sqrt(hidden)).to(like.device)
    b1, b2 = like.new_zeros(hidden), like.new_zeros(())
    params = [t.requires_grad_() for t in (w1, b1, w2, b2)]
    return params, lambda z: torch.tanh(z @ params[0] + params[1]) @ params[2] + params[3]


def _fit(params: list[Tensor], objective: Callable[[], Tensor], adam: bool, steps: int) -> None:
    """Minimise ``objective`` over ``params``: ``steps`` Adam steps or one L-BFGS run."""
    opt: torch.optim.Optimizer
    if adam:
        opt = torch.optim.Adam(params, lr=0.02)
    else:
        opt = torch.optim.LBFGS(params, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad(set_to_none=True)
        loss = objective()
        loss.backward()
        return loss

    for _ in range(steps if adam else 1):
        opt.step(closure)


def _cap(w: Tensor, clip: float) -> float:
    """Threshold ``t`` with ``t = clip * mean(min(w, t))``, so that capped weights ≤ clip x mean."""
    s, _ = torch.sort(w.double(), descending=True)
    n = s.numel()
    k = torch.arange(n, dtype=s.dtype, device=s.device)
    rest = s.flip(0).cumsum(0).flip(0)  # sum of s[k:]
    denom = n - clip * k
    t = clip * rest / denom.clamp(min=1e-300)
    ok = (denom > 0) & (s <= t)
    return float(t[int(ok.int().argmax())])
