"""Transfer learning: what a source domain taught, as a prior for a target domain.

- Model-based: :class:`TransferLearner` puts a Gaussian prior on the target
  network's weights centred on the source network's, and infers the target
  posterior by SVI (``"bayes"``), by the linearised Laplace approximation
  (``"laplace"``), or takes its mode (``"map"``, which is L2-SP); plain
  fine-tuning (``"finetune"``) is the flat-prior limit.
- Feature-based: :class:`BayesianLastLayer` keeps the source network's
  features and infers a Bayesian linear (regression, closed form) or softmax
  (classification, SVI) head on them.
- Instance-based: :func:`density_ratio` estimates ``p_target(x) / p_source(x)``
  with a domain classifier; the weights re-weight source points in the
  likelihood (``TransferLearner.adapt(..., weights=...)``).
"""

from bayesmeta.transfer.density_ratio import DensityRatio, density_ratio
from bayesmeta.transfer.fitting import TransferFit
from bayesmeta.transfer.hyper import TransferHyper
from bayesmeta.transfer.laplace import LaplacePosterior
from bayesmeta.transfer.last_layer import BayesianLastLayer, LastLayerPosterior, split_last_layer
from bayesmeta.transfer.last_layer_state import LastLayerHyper
from bayesmeta.transfer.prior import TransferLearner
from bayesmeta.transfer.source import load_source

__all__ = [
    "BayesianLastLayer",
    "DensityRatio",
    "LaplacePosterior",
    "LastLayerHyper",
    "LastLayerPosterior",
    "TransferFit",
    "TransferHyper",
    "TransferLearner",
    "density_ratio",
    "load_source",
    "split_last_layer",
]
