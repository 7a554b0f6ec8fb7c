"""Guides for the model's ``"theta"`` site: what an adapted task posterior hands to Pyro.

Every posterior that ``learner.adapt`` returns carries one as ``post.guide``,
so that ``pyro.infer.Predictive(learner.model, guide=post.guide)`` draws from
it: a point mass (:class:`DeltaGuide`, the MAML family), a diagonal Normal
(:class:`NormalGuide`), a low-rank Normal (:class:`LowRankGuide`), or a fitted
Pyro autoguide (see :func:`bayesmeta.inference.fit_guide`).
"""

from bayesmeta.guides.fixed import DeltaGuide, LowRankGuide, NormalGuide, TaskGuide

__all__ = ["DeltaGuide", "LowRankGuide", "NormalGuide", "TaskGuide"]
