"""A linear mixed model as a few-shot baseline: conjugate Gaussian adaptation of new groups.

The model, for group ``g`` and observation ``i`` (inputs ``x`` and targets ``y``):

    y_gi = beta_0 + beta_1 x_gi + beta_2 x_gi^2 + b_g0 + b_g1 x_gi + eps_gi,
    b_g ~ N(0, G),  eps_gi ~ N(0, sigma^2),

fixed effects ``1 + x + x^2`` and a random intercept and slope on ``x``. ``beta``, ``G`` and
``sigma^2`` are fitted (REML) on the training groups by statsmodels' ``MixedLM``. A new group
is adapted exactly: given its ``K`` support points, with ``X`` and ``Z`` their fixed- and
random-effect design rows and ``r = y - X beta``, the random effects have the Gaussian
posterior

    Sigma_b = (G^-1 + Z'Z / sigma^2)^-1 = (I + G Z'Z / sigma^2)^-1 G,
    m_b = Sigma_b Z' r / sigma^2,

(the second form needs no inverse of ``G``, which REML may put on the boundary, singular),
and the predictive at a query point with rows ``x_q``, ``z_q`` is Gaussian with mean
``x_q beta + z_q m_b`` and variance ``z_q Sigma_b z_q' + sigma^2``. ``adapt`` returns it as a
:class:`bayesmeta.Prediction`, so that ``bayesmeta.evaluate`` scores it exactly as it scores
the learners.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

import bayesmeta as bm


def fixed_design(x: Tensor) -> Tensor:
    """Fixed-effect rows ``[1, x, x^2]`` ``[..., N, 3]`` of inputs ``[..., N, 1]``."""
    return torch.cat([torch.ones_like(x), x, x * x], -1)


def random_design(x: Tensor) -> Tensor:
    """Random-effect rows ``[1, x]`` ``[..., N, 2]`` of inputs ``[..., N, 1]``."""
    return torch.cat([torch.ones_like(x), x], -1)


@dataclass(frozen=True)
class MixedModelPredictor:
    """The predictive of adapted groups: random-effect posteriors ``N(m_b, Sigma_b)``."""

    beta: Tensor  # [3]
    noise_var: Tensor  # []
    b_mean: Tensor  # [T, 2]
    b_cov: Tensor  # [T, 2, 2]

    def mean_var(self, query_x: Tensor) -> tuple[Tensor, Tensor]:
        """Predictive mean and variance ``[T, Q]`` at inputs ``[T, Q, 1]`` (float64)."""
        x = query_x.to(torch.float64)
        z = random_design(x)
        mean = fixed_design(x) @ self.beta + (z @ self.b_mean[..., None])[..., 0]
        var = ((z @ self.b_cov) * z).sum(-1) + self.noise_var
        return mean, var

    def predict(self, query_x: Tensor) -> bm.Prediction:
        """A Gaussian prediction ``[T, Q, 1]`` (one function sample, per-point scales)."""
        mean, var = self.mean_var(query_x)
        return bm.Prediction.point(mean[..., None], var.sqrt()[..., None])


class MixedModelBaseline:
    """Linear mixed model (fixed ``1 + x + x^2``, random intercept and slope), conjugate adaptation.

    Build it with :meth:`fit` (statsmodels on the training groups' rows) or, for given
    parameters, :meth:`from_params`; then ``adapt(support_x, support_y)`` on batches of new
    groups ``[T, K, 1]`` returns a :class:`MixedModelPredictor` (``predict(query_x)``).

    Attributes
    ----------
    beta : Tensor
        Fixed effects ``[3]`` (intercept, ``x``, ``x^2``).
    cov_re : Tensor
        Random-effect covariance ``G`` ``[2, 2]`` (intercept, slope).
    noise_var : Tensor
        Residual variance ``sigma^2``.
    converged : bool
        Whether statsmodels reported convergence (``True`` for :meth:`from_params`).

    """

    def __init__(self, beta: Tensor, cov_re: Tensor, noise_var: float, converged: bool) -> None:
        self.beta = beta.to(torch.float64)
        self.cov_re = cov_re.to(torch.float64)
        self.noise_var = torch.tensor(float(noise_var), dtype=torch.float64)
        self.converged = converged

    @classmethod
    def from_params(cls, beta: Tensor, cov_re: Tensor, noise_var: float) -> MixedModelBaseline:
        """The baseline with given parameters (no fitting)."""
        return cls(beta, cov_re, noise_var, True)

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> MixedModelBaseline:
        """REML fit on the rows of the training groups (``x``, ``y``, ``groups``: ``[N]``)."""
        from statsmodels.regression.mixed_linear_model import MixedLM
        from statsmodels.tools.sm_exceptions import ConvergenceWarning

        xt = torch.tensor(np.array(x, dtype=np.float64))[
            :, None
        ]  # a copy: pandas' may be read-only
        model = MixedLM(
            np.asarray(y, dtype=np.float64),
            fixed_design(xt).numpy(),
            groups=np.asarray(groups),
            exog_re=random_design(xt).numpy(),
        )
        with warnings.catch_warnings():
            # A boundary fit (a singular G) is legitimate here; it is reported as converged=False.
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            result = model.fit(reml=True)
        beta = torch.tensor(np.array(result.fe_params, dtype=np.float64))
        cov_re = torch.tensor(np.array(result.cov_re, dtype=np.float64))
        return cls(beta, cov_re, float(result.scale), bool(result.converged))

    def posterior(self, support_x: Tensor, support_y: Tensor) -> tuple[Tensor, Tensor]:
        """Random-effect posterior ``(m_b [T, 2], Sigma_b [T, 2, 2])`` of ``[T, K, 1]`` support."""
        x, y = support_x.to(torch.float64), support_y.to(torch.float64)[..., 0]
        z = random_design(x)  # [T, K, 2]
        resid = y - fixed_design(x) @ self.beta  # [T, K]
        zz = z.transpose(-1, -2) @ z / self.noise_var  # [T, 2, 2]
        eye = torch.eye(2, dtype=torch.float64)
        cov = torch.linalg.solve(eye + self.cov_re @ zz, self.cov_re.expand_as(zz))
        cov = 0.5 * (cov + cov.transpose(-1, -2))
        mean = (cov @ (z.transpose(-1, -2) @ resid[..., None]))[..., 0] / self.noise_var
        return mean, cov

    def adapt(self, support_x: Tensor, support_y: Tensor) -> MixedModelPredictor:
        """Condition the random effects of each group ``[T, K, 1]`` on its support points."""
        mean, cov = self.posterior(support_x, support_y)
        return MixedModelPredictor(self.beta, self.noise_var, mean, cov)
