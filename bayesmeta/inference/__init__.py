"""Inference building blocks shared by the learners."""

from bayesmeta.inference.inner_loop import gradient_steps

__all__ = ["gradient_steps"]
