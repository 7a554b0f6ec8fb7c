"""What a :class:`~bayesmeta.transfer.BayesianLastLayer` stores: its hyper-parameters and tensors.

:class:`LastLayerHyper` is the frozen dataclass of its settings (``learner.hparams``; each
field reads as an attribute too), and :class:`LastLayerState` gives the learner the
``config()`` / ``state_dict()`` / ``load_state_dict()`` of a checkpoint
(:func:`~bayesmeta.io.save_learner`, :func:`~bayesmeta.io.load_learner`): the encoder and
the source head (the prior's centre) as tensors, with the scales :meth:`fit_prior
<bayesmeta.transfer.BayesianLastLayer.fit_prior>` learned; and in the config, the
settings and the network's spec (an MLP split at its last layer, or an
:class:`~bayesmeta.nets.MLP` / :class:`~bayesmeta.nets.Conv4` encoder).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

import torch
from torch import Tensor, nn

from bayesmeta._checks import check_count, positive
from bayesmeta.errors import CheckpointError
from bayesmeta.nets.spec import net_spec

__all__ = ["LastLayerHyper", "LastLayerState"]


@dataclass(frozen=True)
class LastLayerHyper:
    """:class:`~bayesmeta.transfer.BayesianLastLayer`'s hyper-parameters (see its parameters).

    Raises
    ------
    TypeError, ValueError
        If a value is of the wrong type or out of range (naming it).

    """

    num_outputs: int
    classification: bool = False
    prior_scale: float | Literal["empirical"] = "empirical"
    noise_scale: float = 0.1
    learn_noise: bool = True
    svi_steps: int = 500
    svi_lr: float = 0.05
    feature_dims: int | None = None
    eb_steps: int = 300
    eb_lr: float = 0.05

    def __post_init__(self) -> None:
        minimum = 2 if self.classification else 1
        check_count("num_outputs", self.num_outputs, minimum=minimum)
        object.__setattr__(self, "classification", bool(self.classification))
        if self.prior_scale != "empirical":
            object.__setattr__(self, "prior_scale", positive("prior_scale", self.prior_scale))
        object.__setattr__(self, "noise_scale", positive("noise_scale", self.noise_scale))
        object.__setattr__(self, "learn_noise", bool(self.learn_noise))
        check_count("svi_steps", self.svi_steps, minimum=1)
        object.__setattr__(self, "svi_lr", positive("svi_lr", self.svi_lr))
        if self.feature_dims is not None:
            check_count("feature_dims", self.feature_dims, minimum=1)
        check_count("eb_steps", self.eb_steps, minimum=1)
        object.__setattr__(self, "eb_lr", positive("eb_lr", self.eb_lr))


class LastLayerState:
    """Checkpoint state of a :class:`~bayesmeta.transfer.BayesianLastLayer` (a mixin).

    Not a learner of its own: the learner sets the attributes below. The
    hyper-parameters read as attributes (properties over ``hparams``); their
    types are declared here for the type checker.
    """

    hparams: LastLayerHyper
    num_outputs: int
    classification: bool
    prior_scale: float | Literal["empirical"]
    noise_scale: float
    learn_noise: bool
    svi_steps: int
    svi_lr: float
    eb_steps: int
    eb_lr: float
    encoder: nn.Module
    head: nn.Linear | None
    prior_scale_: Tensor | None
    noise_scale_: Tensor | None

    def predictive_noise(self) -> Tensor | None:
        """The noise scale ``[O]`` predictions use; ``None`` for a classifier.

        The fitted ``noise_scale_`` (:meth:`fit_prior`), else the starting ``noise_scale``.
        """
        if self.classification:
            return None
        if self.noise_scale_ is not None:
            return self.noise_scale_.detach().reshape(-1)
        return torch.full((self.num_outputs,), float(self.noise_scale))

    def config(self) -> dict[str, Any]:
        """The settings and network spec that rebuild this learner (JSON-ready).

        ``{"learner", **hparams, "net"}``; ``"net"`` describes the encoder (the
        spec of the MLP it was split from, or of an MLP or Conv4 encoder; ``None``
        for other modules, which a checkpoint cannot rebuild) and, under
        ``"last_layer"``, whether it is that MLP split at its last layer and the
        width of the source head (``None``: no head, a prior centred at zero).
        """
        hp = {f.name: getattr(self.hparams, f.name) for f in fields(self.hparams)}
        sizes = getattr(self.encoder, "source_sizes", None)  # an MLP split at its last layer
        split = sizes is not None
        activation = getattr(self.encoder, "activation_name", None)
        spec = None if sizes is None else {"sizes": list(sizes), "activation": activation}
        spec = net_spec(self.encoder) if spec is None else spec
        head = None if self.head is None else self.head.in_features
        net = None if spec is None else {**spec, "last_layer": {"split": split, "head": head}}
        return {"learner": type(self).__name__, **hp, "net": net}

    def state_dict(self) -> dict[str, Tensor]:
        """The encoder's and head's tensors and the fitted scales, by name."""
        state = {f"encoder.{k}": v.detach() for k, v in self.encoder.state_dict().items()}
        if self.head is not None:
            state.update({f"head.{k}": v.detach() for k, v in self.head.state_dict().items()})
        for name in ("prior_scale_", "noise_scale_"):
            value = getattr(self, name)
            if value is not None:
                state[name] = value.detach()
        return state

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Load tensors written by :meth:`state_dict`.

        Raises
        ------
        RuntimeError
            If the encoder's or head's tensors do not match (names or shapes).

        """
        enc = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
        self.encoder.load_state_dict(enc)
        head = {k.removeprefix("head."): v for k, v in state.items() if k.startswith("head.")}
        if (self.head is None) != (not head):
            raise RuntimeError("the state's head does not match the learner's (one has none)")
        if self.head is not None:
            self.head.load_state_dict(head)
        for name in ("prior_scale_", "noise_scale_"):
            value = state.get(name)
            setattr(self, name, None if value is None else value.clone())

    @classmethod
    def from_config(cls, net: nn.Module, config: Mapping[str, Any]) -> Any:
        """A learner with fresh weights from :meth:`config` and its built network ``net``.

        Raises
        ------
        CheckpointError
            If the config does not say how the network was split.

        """
        cfg = {k: v for k, v in config.items() if k not in ("learner", "net")}
        spec = config.get("net")
        split_info = spec.get("last_layer") if isinstance(spec, dict) else None
        if not isinstance(split_info, dict):
            raise CheckpointError("the checkpoint's BayesianLastLayer config has no last_layer")
        head_width = split_info.get("head")
        if split_info.get("split"):
            return cls.from_network(  # type: ignore[attr-defined]
                net, centre_on_head=head_width is not None, **cfg
            )
        head = None
        if head_width is not None:
            head = nn.Linear(int(head_width), int(cfg["num_outputs"]))
            head = head.to(next(iter(net.parameters()), torch.empty(0)).device)
        return cls(net, head=head, **cfg)  # type: ignore[call-arg]
