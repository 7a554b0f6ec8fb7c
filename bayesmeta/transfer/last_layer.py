"""Feature-based transfer: a frozen source encoder, a Bayesian linear head on the target.

A source network is split into an encoder ``phi(x)`` and its final linear layer.
On the target's few examples only a linear head on ``phi(x)`` is inferred, under
a prior centred on the source's head (what the source taught) or on zero.
Regression is exact Bayesian linear regression
(:mod:`bayesmeta.transfer._linear_gaussian`), its prior scale and noise set by
empirical Bayes per task or across related tasks
(:meth:`BayesianLastLayer.fit_prior`); classification fits a mean-field
Gaussian over a softmax head's weights by SVI.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor, nn

from bayesmeta._checks import check_count, check_support, check_tensor, fmt_shape, positive
from bayesmeta.errors import ShapeError
from bayesmeta.inference.task_svi import task_posterior_svi
from bayesmeta.learners.hyper import hyper_properties, pick_hyper
from bayesmeta.model.likelihoods import CategoricalLikelihood, GaussianLikelihood, Likelihood
from bayesmeta.model.priors import GaussianPrior
from bayesmeta.model.task_model import TaskModel
from bayesmeta.nets.functional import FunctionalNet
from bayesmeta.nets.mlp import MLP
from bayesmeta.posteriors.gaussian import GaussianTaskPosterior
from bayesmeta.transfer import _linear_gaussian as lg
from bayesmeta.transfer.last_layer_posterior import LastLayerPosterior
from bayesmeta.transfer.last_layer_state import LastLayerHyper, LastLayerState

__all__ = ["BayesianLastLayer", "LastLayerPosterior", "split_last_layer"]


class _MLPEncoder(nn.Module):
    """An :class:`~bayesmeta.nets.MLP`'s layers but the last, each followed by the activation."""

    def __init__(self, mlp: MLP) -> None:
        super().__init__()
        self.layers = nn.ModuleList(list(mlp.layers)[:-1])
        self.activation = mlp.activation
        #: The split MLP's widths and activation (a checkpoint rebuilds it from them).
        self.source_sizes = tuple(mlp.sizes)
        self.activation_name = mlp.activation_name

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = self.activation(layer(x))
        return x


def split_last_layer(net: nn.Module) -> tuple[nn.Module, nn.Linear]:
    """Split ``net`` into ``(encoder, head)``: everything before its final ``nn.Linear``, and it.

    ``net`` is a :class:`~bayesmeta.nets.MLP` (the encoder applies every layer but
    the last, each followed by the activation) or an ``nn.Sequential`` ending in
    ``nn.Linear``; other networks raise ``TypeError``. The parts share ``net``'s
    modules (no copy).
    """
    if isinstance(net, MLP):
        head = net.layers[-1]
        assert isinstance(head, nn.Linear)
        return _MLPEncoder(net), head
    if isinstance(net, nn.Sequential) and len(net) > 0 and isinstance(net[-1], nn.Linear):
        return net[:-1], net[-1]
    raise TypeError(
        f"cannot find the last linear layer of a {type(net).__name__}: split_last_layer takes an "
        "MLP or an nn.Sequential ending in nn.Linear; otherwise pass encoder= and head= to "
        "BayesianLastLayer explicitly"
    )


class BayesianLastLayer(LastLayerState):
    """Transfer by a Bayesian linear head on a frozen encoder's features.

    Parameters
    ----------
    encoder
        Maps ``[N, *features]`` to ``[N, H]`` (outputs are flattened per point);
        used in eval mode without gradients, never trained.
    num_outputs
        ``O`` regression outputs, or ``C`` classes.
    head
        The source's final layer, ``nn.Linear(H, O)``: the prior mean of the head
        weights. ``None``: a prior centred at zero.
    classification
        Softmax head on integer labels (SVI) instead of linear regression (exact).
    prior_scale
        Prior standard deviation ``alpha^-1/2`` of each head weight (and bias), or
        ``"empirical"``: per task, maximise the regression evidence over it (for
        classification it means 1.0). With far fewer points than features, the
        per-task evidence tends to fit the noise too small; :meth:`fit_prior`
        on related tasks avoids that.
    noise_scale
        Regression noise standard deviation, or its starting value when learned.
    learn_noise
        Fit the noise scale (per output) by the evidence.
    svi_steps, svi_lr
        SVI steps and Adam learning rate of the classification head.
    feature_dims
        Dimensions of one input point (default: ``encoder.feature_dims``, else 1).
    eb_steps, eb_lr
        Adam steps and learning rate of the per-task empirical-Bayes fit.

    Attributes
    ----------
    prior_scale_, noise_scale_ : Tensor or None
        Shared prior scale ``[]`` and noise scales ``[O]`` set by :meth:`fit_prior`;
        while set, :meth:`adapt` uses them instead of fitting per task.

    """

    def __init__(
        self,
        encoder: nn.Module,
        *,
        num_outputs: int,
        head: nn.Linear | None = None,
        classification: bool = False,
        prior_scale: float | Literal["empirical"] = "empirical",
        noise_scale: float = 0.1,
        learn_noise: bool = True,
        svi_steps: int = 500,
        svi_lr: float = 0.05,
        feature_dims: int | None = None,
        eb_steps: int = 300,
        eb_lr: float = 0.05,
    ) -> None:
        if not isinstance(encoder, nn.Module):
            raise TypeError(f"encoder must be a torch.nn.Module, got {type(encoder).__name__}")
        if feature_dims is None:  # read from the encoder, recorded as given
            check_count("feature_dims", getattr(encoder, "feature_dims", 1), minimum=1)
        #: The hyper-parameters (a frozen dataclass); each reads as an attribute too.
        self.hparams = pick_hyper(LastLayerHyper, locals())
        if head is not None and (
            not isinstance(head, nn.Linear) or head.out_features != num_outputs
        ):
            raise ShapeError(
                f"head must be an nn.Linear with num_outputs={num_outputs} outputs, got "
                f"{head!r}; pass head=None for a prior centred at zero"
            )
        self.encoder, self.head = encoder, head
        self.prior_scale_: Tensor | None = None
        self.noise_scale_: Tensor | None = None

    @property
    def feature_dims(self) -> int:
        """Dimensions of one input point (given, else ``encoder.feature_dims``, else 1)."""
        given = self.hparams.feature_dims
        return int(getattr(self.encoder, "feature_dims", 1)) if given is None else given

    @classmethod
    def from_network(
        cls,
        source: nn.Module,
        *,
        centre_on_head: bool = True,
        num_outputs: int | None = None,
        **kwargs: Any,
    ) -> BayesianLastLayer:
        """From a source network split by :func:`split_last_layer` (other arguments: as ``cls``).

        The prior is centred on the source head, or at zero if ``centre_on_head=False``
        or ``num_outputs`` (default: the source's) differs from the source's.
        """
        encoder, head = split_last_layer(source)
        outputs = head.out_features if num_outputs is None else num_outputs
        keep = centre_on_head and outputs == head.out_features
        return cls(encoder, num_outputs=outputs, head=head if keep else None, **kwargs)

    # -- features ------------------------------------------------------------------

    def features(self, x: Tensor) -> Tensor:
        """Features and a constant 1 (for the bias): ``[*B, N, *f] -> [*B, N, H+1]``, no grad."""
        xt = check_tensor("x", x)
        fd = self.feature_dims
        if xt.dim() < fd + 1 or not xt.is_floating_point():
            raise ShapeError(
                f"x must be floating inputs [*B, N, *features] with {fd} feature dimension(s), "
                f"got {xt.dtype} {fmt_shape(xt.shape)}"
            )
        lead = xt.shape[: xt.dim() - fd]
        param = next(iter(self.encoder.parameters()), None)
        flat = xt.reshape(math.prod(lead), *xt.shape[xt.dim() - fd :])
        flat = flat if param is None else flat.to(param.device, param.dtype)
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            with torch.no_grad():
                h = self.encoder(flat)
        except RuntimeError as err:
            raise ShapeError(
                f"the encoder cannot take inputs of shape {fmt_shape(xt.shape)} "
                f"({fd} feature dimension(s)): {err}"
            ) from err
        finally:
            self.encoder.train(was_training)
        h = h.reshape(flat.shape[0], math.prod(h.shape[1:]))
        return torch.cat([h, h.new_ones(h.shape[0], 1)], -1).reshape(*lead, h.shape[-1] + 1)

    def _encode(
        self, name: str, x: object, batch: tuple[int, ...], width: int | None = None
    ) -> Tensor:
        """Features of inputs ``[*batch, N, *f]`` whose width the head (or ``width``) takes."""
        xt, fd = check_tensor(name, x), self.feature_dims
        if xt.dim() != len(batch) + 1 + fd or tuple(xt.shape[: len(batch)]) != batch:
            raise ShapeError(
                f"{name} must have shape [{''.join(f'{b}, ' for b in batch)}N, *features] "
                f"({fd} feature dimension(s)), got {fmt_shape(xt.shape)}"
            )
        phi = self.features(xt)
        if width is None and self.head is not None:
            width = self.head.in_features + 1
        if width is not None and phi.shape[-1] != width:
            raise ShapeError(
                f"the encoder gives {phi.shape[-1] - 1} features for {name}, but the head takes "
                f"{width - 1}; check the inputs' feature size, or pass a matching head"
            )
        return phi

    # -- inference -----------------------------------------------------------------

    def _support(self, support_x: Tensor, support_y: Tensor) -> tuple[Tensor, Tensor, bool]:
        """Support features ``[T, K, H+1]``, checked targets, and whether a batch was given."""
        if self.classification and check_tensor("support_y", support_y).is_floating_point():
            raise ShapeError(
                f"support_y must be integer class labels, got {support_y.dtype}; "
                "pass classification=False for regression targets"
            )
        x, y, batched = check_support(support_x, support_y, self.feature_dims)
        batch = tuple(x.shape[:1]) if batched else ()
        c = self.num_outputs
        if self.classification:
            bad = y[(y < 0) | (y >= c)]
            if bad.numel():
                raise ValueError(
                    f"support_y holds label {int(bad[0])}, outside 0..{c - 1} for "
                    f"num_outputs={c} classes; relabel the classes 0..{c - 1} or raise num_outputs"
                )
        elif not y.is_floating_point() or y.shape[-1] != c:
            raise ShapeError(
                f"support_y must be floating regression targets [..., K, {c}] (num_outputs={c}), "
                f"got {y.dtype} {fmt_shape(y.shape)}; pass classification=True for class labels"
            )
        phi = self._encode("support_x", x, batch)
        phi = phi if batched else phi.unsqueeze(0)
        return phi, (y if batched else y.unsqueeze(0)).to(phi.device), batched

    @property
    def model(self) -> TaskModel:
        """The last-layer model as a Pyro model ``model(x, y=None)``: the one hierarchical model.

        ``theta`` ``[T, O (H+1)]`` is each task's head (weights and bias, as
        :meth:`_prior_loc` lays them out) with the prior ``Normal(source head or
        0, sigma^2)``, ``sigma`` the fitted (:meth:`fit_prior`) or given prior
        scale (1 for ``"empirical"`` before a fit); the features are the frozen
        encoder's (:meth:`features`, a constant 1 appended), and ``"y"`` is
        Gaussian with the fitted (else initial) noise scale, or categorical.
        The per-task empirical-Bayes scales that :meth:`adapt` chooses when no
        shared ones are fitted are not part of the model: after
        :meth:`fit_prior` the model and :meth:`adapt` agree.

        Raises
        ------
        ValueError
            Without a source ``head``, whose size gives the feature width.

        """
        if self.head is None:
            raise ValueError(
                "BayesianLastLayer.model needs the feature width: build it with a head "
                "(BayesianLastLayer.from_network(source)) or head=nn.Linear(H, num_outputs)"
            )
        width = self.head.in_features + 1
        param = next(iter(self.head.parameters()))
        linear = nn.Linear(width, self.num_outputs, bias=False).to(param.device, param.dtype)
        fnet = FunctionalNet(linear)
        loc = self._prior_loc(param.new_zeros(1, width)).reshape(-1)
        fitted = self.prior_scale_
        scale = float(fitted) if fitted is not None else self._start_scale()
        prior = GaussianPrior(loc, scale, learn_loc=False, learn_scale=False)
        likelihood: Likelihood
        if self.classification:
            likelihood = CategoricalLikelihood()
        else:
            noise = self.noise_scale_
            likelihood = GaussianLikelihood(
                self.noise_scale, num_outputs=self.num_outputs, learn_scale=False
            ).to(param.device)
            if noise is not None:
                likelihood.log_scale.data.copy_(noise.detach().reshape(-1).log())
        return TaskModel(fnet, prior, likelihood, owner=self.encoder, features=self.features)

    def _prior_loc(self, phi: Tensor) -> Tensor:
        """Prior mean ``[O, H+1]`` of the head: the source head's weights and bias, or zeros."""
        w0 = phi.new_zeros(self.num_outputs, phi.shape[-1])
        if self.head is not None:
            w0[:, :-1] = self.head.weight.detach()
            if self.head.bias is not None:
                w0[:, -1] = self.head.bias.detach()
        return w0

    def fit_prior(
        self, support_x: Tensor, support_y: Tensor, *, steps: int = 300, lr: float = 0.05
    ) -> BayesianLastLayer:
        """Empirical Bayes across related tasks ``[T, K, *f]``, ``[T, K, O]``; returns ``self``.

        Maximises the tasks' summed log evidence over one ``alpha^-1/2`` and (if
        ``learn_noise``) one ``sigma`` per output, by ``steps`` Adam steps of rate
        ``lr``, and keeps them in ``prior_scale_`` and ``noise_scale_`` for
        :meth:`adapt`. Regression only (``NotImplementedError`` for classification).
        """
        if self.classification:
            raise NotImplementedError(
                "fit_prior is regression-only (the evidence of a softmax head has no closed "
                "form); pass a float prior_scale for classification"
            )
        steps, lr = check_count("steps", steps, minimum=1), positive("lr", lr)
        phi, y, _ = self._support(support_x, support_y)
        la, ls = lg.empirical_bayes(
            lg.spectrum(phi, y, self._prior_loc(phi)),
            y,
            prior_scale=self._start_scale(),
            noise_scale=self.noise_scale,
            fit_alpha=True,
            fit_sigma=self.learn_noise,
            shared=True,
            steps=steps,
            lr=lr,
        )
        self.prior_scale_, self.noise_scale_ = (-0.5 * la[0]).exp(), ls[0].exp()
        return self

    def adapt(
        self, support_x: Tensor, support_y: Tensor, *, generator: torch.Generator | None = None
    ) -> LastLayerPosterior:
        """The head's posterior for one task or a batch (batch shape ``()`` or ``(T,)``).

        ``support_x`` is ``[K, *f]`` or ``[T, K, *f]``; ``support_y`` floating targets
        ``[..., K, O]`` or labels ``[..., K]`` in ``0..C-1``. ``generator`` seeds the
        classification SVI (regression is exact).
        """
        phi, y, batched = self._support(support_x, support_y)
        head: lg.LinearGaussianHead | GaussianTaskPosterior
        if self.classification:
            head = self._adapt_classification(phi, y, generator)
            if not batched:
                head = GaussianTaskPosterior(head.fnet, head.loc[0], head.log_scale[0], None, True)
        else:
            head = self._adapt_regression(phi, y)
            head = head if batched else head.task(0)
        return LastLayerPosterior(self, head)

    def _start_scale(self) -> float:
        return 1.0 if self.prior_scale == "empirical" else self.prior_scale

    def _adapt_regression(self, phi: Tensor, y: Tensor) -> lg.LinearGaussianHead:
        w0 = self._prior_loc(phi)
        spec = lg.spectrum(phi, y, w0)
        fitted = self.prior_scale_ is not None and self.noise_scale_ is not None
        la, ls = lg.empirical_bayes(
            spec,
            y,
            prior_scale=self._start_scale() if self.prior_scale_ is None else self.prior_scale_,
            noise_scale=self.noise_scale if self.noise_scale_ is None else self.noise_scale_,
            fit_alpha=not fitted and self.prior_scale == "empirical",
            fit_sigma=not fitted and self.learn_noise,
            shared=False,
            steps=self.eb_steps,
            lr=self.eb_lr,
        )
        return lg.LinearGaussianHead.from_spectrum(spec, w0, la, ls)

    def _adapt_classification(
        self, phi: Tensor, y: Tensor, generator: torch.Generator | None
    ) -> GaussianTaskPosterior:
        w0 = self._prior_loc(phi)
        linear = nn.Linear(phi.shape[-1] - 1, self.num_outputs, device=phi.device, dtype=phi.dtype)
        with torch.no_grad():
            linear.weight.copy_(w0[:, :-1])
            linear.bias.copy_(w0[:, -1])
        fnet = FunctionalNet(linear)
        prior = GaussianPrior.for_net(
            fnet, scale=self._start_scale(), loc="module", learn_loc=False, learn_scale=False
        )
        post = task_posterior_svi(
            fnet,
            prior,
            CategoricalLikelihood(),
            phi[..., :-1],
            y.long(),
            steps=self.svi_steps,
            lr=self.svi_lr,
            generator=generator,
        )
        assert isinstance(post, GaussianTaskPosterior)
        return post


hyper_properties(BayesianLastLayer, LastLayerHyper, frozenset())
