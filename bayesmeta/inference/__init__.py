"""Inference building blocks shared by the learners."""

from bayesmeta.inference.inner_loop import gradient_steps
from bayesmeta.inference.task_svi import task_posterior_svi

__all__ = ["gradient_steps", "task_posterior_svi"]
