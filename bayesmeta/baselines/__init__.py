"""Simple few-shot baselines to put beside a meta-learner.

Each baseline has a learner's ``adapt(support_x, support_y) -> predictor`` shape, so
:func:`bayesmeta.evaluate` scores it on the same episodes as a learner (accuracy, NLL, Brier,
ECE):

- :class:`NearestNeighbour`: 1-nearest neighbour (raw inputs or a fixed embedding);
- :class:`NearestCentroid`: nearest class mean (ProtoNet's rule without meta-training);
- :class:`LinearProbe`: logistic regression (linear or cosine head) fitted on each support
  set; over an encoder from :func:`pretrain_encoder` it is Chen et al.'s (2019) *Baseline* /
  *Baseline++*.

Probabilities are a softmax of the scores divided by a temperature that
:meth:`Baseline.fit_temperature` fits on episodes of the training classes.

Examples
--------
>>> import torch
>>> from bayesmeta.tasks import Episodes
>>> x, y = torch.randn(200, 4), torch.arange(200) % 10
>>> train = Episodes(x, y, 5, 1, 5, classes=range(5), seed=0)
>>> test = Episodes(x, y, 5, 1, 5, classes=range(5, 10), seed=1)
>>> nn1 = NearestNeighbour()
>>> temperature = nn1.fit_temperature(train)
>>> batch = test.sample(3)
>>> nn1.adapt(batch.support_x, batch.support_y).predict(batch.query_x).probs.shape
torch.Size([3, 25, 5])

"""

from bayesmeta.baselines._base import Baseline, BaselinePredictor
from bayesmeta.baselines.linear import Head, LinearProbe
from bayesmeta.baselines.neighbours import NearestCentroid, NearestNeighbour, squared_distances
from bayesmeta.baselines.pretrain import PretrainResult, pretrain_encoder

__all__ = [
    "Baseline",
    "BaselinePredictor",
    "Head",
    "LinearProbe",
    "NearestCentroid",
    "NearestNeighbour",
    "PretrainResult",
    "pretrain_encoder",
    "squared_distances",
]
