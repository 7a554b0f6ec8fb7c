"""A linear (or cosine) head fitted on each support set over a fixed embedding."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.functional import normalize

from bayesmeta._checks import check_count
from bayesmeta.baselines._base import Baseline, _positive

__all__ = ["Head", "LinearProbe"]

Head = Literal["linear", "cosine"]


class LinearProbe(Baseline):
    """Multinomial logistic regression fitted on each support set over a fixed embedding.

    With ``encoder=None`` it is logistic regression on the raw (flattened) inputs; with an
    encoder pre-trained by :func:`~bayesmeta.baselines.pretrain_encoder` on the training
    classes it is Chen et al.'s (2019) *Baseline* (``head="linear"``) or *Baseline++*
    (``head="cosine"``): the backbone stays fixed and a new head is fitted per episode.

    Each task's head starts at zero and takes ``steps`` full-batch Adam steps on the support
    cross-entropy plus ``l2 / 2 * ||W||^2`` (the bias is not penalised); all tasks of a call are
    fitted at once. Embeddings are centred on the support set's mean and divided by its root
    mean square deviation, one number per task (``"linear"``), or scaled to unit length
    (``"cosine"``, logits ``scale * cos(z, w_c)``). Predictions are
    ``softmax(logits / temperature)``; fit the temperature on training-class episodes with
    :meth:`~bayesmeta.baselines.Baseline.fit_temperature`.

    Parameters
    ----------
    encoder
        A fixed ``nn.Module`` mapping ``[M, *features]`` to ``[M, E]``, or ``None``.
    head
        ``"linear"`` or ``"cosine"``.
    steps
        Adam steps per support set, ``>= 1``.
    lr
        Adam's learning rate, ``> 0``.
    l2
        L2 penalty on the head's weights, ``>= 0``; it keeps a one-shot head finite.
    scale
        The cosine head's logit scale, ``> 0`` (ignored for ``"linear"``).
    temperature
        Softmax temperature, ``> 0``.

    Examples
    --------
    >>> import torch
    >>> sx, sy = torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([0, 1])
    >>> probe = LinearProbe(steps=50)
    >>> probe.adapt(sx, sy).predict(torch.tensor([[0.1, 0.9]])).predicted
    tensor([0])

    """

    def __init__(
        self,
        encoder: nn.Module | None = None,
        *,
        head: Head = "linear",
        steps: int = 100,
        lr: float = 0.1,
        l2: float = 1e-2,
        scale: float = 10.0,
        temperature: float = 1.0,
    ) -> None:
        super().__init__(encoder, temperature=temperature)
        if head not in ("linear", "cosine"):
            raise ValueError(f"head must be 'linear' or 'cosine', got {head!r}")
        self.head: Head = head
        self.steps = check_count("steps", steps, minimum=1)
        self.lr = _positive("lr", lr)
        if isinstance(l2, bool) or not isinstance(l2, int | float) or not 0 <= l2 < float("inf"):
            raise ValueError(f"l2 must be a finite number >= 0, got {l2!r}")
        self.l2 = float(l2)
        self.scale = _positive("scale", scale)

    def _features(self, z: Tensor, centre: Tensor, spread: Tensor) -> Tensor:
        if self.head == "cosine":
            return normalize(z, dim=-1)
        return (z - centre) / spread

    def fit_state(self, zs: Tensor, onehot: Tensor) -> tuple[Tensor, ...]:
        """Fit the heads; keep ``(centre [T,1,E], spread [T,1,1], W [T,E,N], b [T,1,N])``."""
        centre = zs.mean(1, keepdim=True)
        # One scale per task: a per-dimension one would blow up the dimensions that happen to
        # be constant over a few support examples (blank pixels in one shot).
        spread = (zs - centre).pow(2).mean((1, 2), keepdim=True).sqrt().clamp_min(1e-6)
        if self.head == "cosine":
            centre, spread = torch.zeros_like(centre), torch.ones_like(spread)
        f = self._features(zs, centre, spread).detach()
        t, _, e = f.shape
        n = onehot.shape[-1]
        weight = torch.zeros((t, e, n), dtype=f.dtype, requires_grad=True)
        bias = torch.zeros((t, 1, n), dtype=f.dtype, requires_grad=True)
        params = [weight] if self.head == "cosine" else [weight, bias]
        if self.head == "cosine":  # a zero direction has no cosine: start at the class means
            with torch.no_grad():
                weight.copy_((onehot.transpose(-1, -2) @ f).transpose(-1, -2))
        opt = torch.optim.Adam(params, lr=self.lr)
        y = onehot.argmax(-1)
        with torch.enable_grad():
            for _ in range(self.steps):
                opt.zero_grad(set_to_none=True)
                logits = self._logits(f, weight, bias)
                ce = nn.functional.cross_entropy(
                    logits.reshape(-1, n), y.reshape(-1), reduction="sum"
                )
                loss = (ce + 0.5 * self.l2 * (weight * weight).sum()) / t
                loss.backward()
                opt.step()
        return centre, spread, weight.detach(), bias.detach()

    def _logits(self, f: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        if self.head == "cosine":
            return self.scale * f @ normalize(weight, dim=-2)
        return f @ weight + bias

    def scores(self, state: tuple[Tensor, ...], zq: Tensor, n_way: int) -> Tensor:
        """The fitted heads' logits ``[T, Q, N]``."""
        centre, spread, weight, bias = state
        return self._logits(self._features(zq, centre, spread), weight, bias)
