"""Inference on the model: the learners' inner loops, test-time SVI with any guide.

``gradient_steps`` (the MAML family's inner loop), ``gaussian_steps`` (Bayesian
MAML's Gaussian inner VI, with its fast path and generic route),
``task_posterior_svi`` (mean-field or low-rank SVI per task) and ``fit_guide``
(any Pyro guide fitted by SVI on a learner's model).
"""

from bayesmeta.inference.gaussian_vi import gaussian_steps
from bayesmeta.inference.guide_svi import fit_guide
from bayesmeta.inference.inner_loop import gradient_steps
from bayesmeta.inference.task_svi import task_posterior_svi

__all__ = ["fit_guide", "gaussian_steps", "gradient_steps", "task_posterior_svi"]
