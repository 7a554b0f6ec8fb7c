"""Scoring predictions: metrics, calibration, reliability, held-out evaluation, plots.

- :mod:`~bayesmeta.scoring.metrics`: MSE, NLL, coverage, CRPS, accuracy, Brier, ECE
  (also ``bayesmeta.metrics``).
- :mod:`~bayesmeta.scoring.calibration` and :mod:`~bayesmeta.scoring.reliability`:
  calibration curves, PIT values and reliability diagrams.
- :func:`evaluate` (also ``bayesmeta.evaluate``): a learner on held-out tasks.
- :func:`~bayesmeta.scoring.chunks.predict_chunks`: the seeded, chunked prediction
  loop that evaluation and the run report share.
- :mod:`~bayesmeta.scoring.plotting`: the figures (needs matplotlib, so it is not
  imported here).
"""

from bayesmeta.scoring import metrics
from bayesmeta.scoring.chunks import predict_chunks
from bayesmeta.scoring.evaluation import Adaptable, Evaluation, evaluate

__all__ = ["Adaptable", "Evaluation", "evaluate", "metrics", "predict_chunks"]
