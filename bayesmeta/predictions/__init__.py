"""Predictions read from the likelihood: what every learner's ``predict`` returns.

- :class:`Prediction`: regression samples with mean, standard deviation and intervals.
- :class:`ClassPrediction`: class probabilities with the total / aleatoric /
  epistemic split of their uncertainty.
"""

from bayesmeta.predictions.class_prediction import ClassPrediction
from bayesmeta.predictions.prediction import Prediction

__all__ = ["ClassPrediction", "Prediction"]
